"""Throughput of one set of images run in chunks of different sizes, interleaved round by round.

Usage: .venv/bin/python scripts/bench_chunks.py [--models acmix_resnet50,acmix_swin_tiny] [--images 32]
        [--chunks 1,8,32] [--rounds 7] [--threads 2] [--onnx MODEL=PATH]

Why: ``Predictor.predict(batch_size=...)`` and ``evaluate --batch`` choose how many images go into
one inference call. ``acmix-deploy benchmark --batch 1,8,32`` times each batch size in its own
phase, so a change of load between phases moves one size and not the others. Here every round
runs the same ``--images`` images once per chunk size, each candidate in turn (the project's
``time_interleaved``), so the sizes see the same load and their img/s compare directly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_floor import export_deploy  # seed 0: the same weights as bench_floor's exports (scripts/ on sys.path)

from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved


def chunked_runs(path: Path, images: int, chunks: list[int], threads: int):
    """One callable per chunk size: all ``images`` through one session, ``chunk`` images a call."""
    session = ort_session(path, threads=threads)
    inp = session.get_inputs()[0]
    side = inp.shape[-1] if isinstance(inp.shape[-1], int) else 224
    batch = np.random.default_rng(0).standard_normal((images, 3, side, side), dtype=np.float32)

    def run(chunk: int):
        def call() -> None:
            for start in range(0, images, chunk):
                session.run(None, {inp.name: batch[start : start + chunk]})

        return call

    return {chunk: run(chunk) for chunk in chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--chunks", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", action="append", default=[], help="MODEL=PATH: reuse a deploy export")
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.onnx)
    models = args.models.split(",")
    chunks = [int(c) for c in args.chunks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        candidates = {}
        for model in models:
            path = Path(given[model]) if model in given else export_deploy(model, Path(tmp))
            for chunk, call in chunked_runs(path, args.images, chunks, args.threads).items():
                candidates[f"{model} chunk {chunk}"] = call
        stats = time_interleaved(candidates, rounds=args.rounds)
    for model in models:
        ips = {c: args.images / (stats[f"{model} chunk {c}"].p50 / 1e3) for c in chunks}
        best = max(ips.values())
        cells = "  ".join(f"chunk {c}: {ips[c]:6.2f} img/s ({best / ips[c]:.2f}x)" for c in chunks)
        print(f"{model:18s} {args.images} images  {cells}  (x: the best chunk's img/s over this one's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
