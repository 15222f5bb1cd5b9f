"""ONNX Runtime worker-thread spinning on the deploy ONNX: each session timed on its own, same rounds.

Usage: .venv/bin/python scripts/bench_spinning.py [--models acmix_resnet50,acmix_swin_tiny] [--batches 1,8]
        [--rounds 12] [--pause 0.2] [--onnx MODEL=PATH]

Why: every session this project makes runs without spinning (``ort_session(spinning=False)``),
while ONNX Runtime's own default spins. A spinning session's threads keep a core busy after
``run`` returns, so timing sessions back to back (as every side-by-side measurement here does)
slows whichever runs next. To measure what spinning buys a session on its own, this script
sleeps ``--pause`` seconds before every timed call (outside the timed span) and runs each
session once untimed first, then once timed. Prints medians and the spin/no-spin ratio;
``--back-to-back`` also times the two sessions without the pause, which shows the interference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_floor import export_deploy  # seed 0: the same weights as bench_floor's exports (scripts/ on sys.path)

from acmix_deploy.runtimes.onnxruntime import ort_session


def time_sessions(path: Path, batch: int, rounds: int, pause: float, threads: int) -> dict[str, float]:
    """Median ms per session, the two sessions alternating which goes first each round."""
    sessions = {
        "no spin": ort_session(path, threads=threads, spinning=False),
        "spin": ort_session(path, threads=threads, spinning=True),
    }
    name = sessions["spin"].get_inputs()[0].name
    feed = {name: np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)}
    for session in sessions.values():
        session.run(None, feed)
    samples: dict[str, list[float]] = {label: [] for label in sessions}
    order = list(sessions)
    for r in range(rounds):
        for label in order if r % 2 else order[::-1]:
            if pause:
                time.sleep(pause)
                sessions[label].run(None, feed)  # untimed: wakes this session's own threads
            start = time.perf_counter()
            sessions[label].run(None, feed)
            samples[label].append((time.perf_counter() - start) * 1e3)
    return {label: float(np.median(values)) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds slept before each timed call")
    parser.add_argument("--back-to-back", action="store_true", help="also time without the pause")
    parser.add_argument("--onnx", action="append", default=[], help="MODEL=PATH: reuse a deploy export")
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.onnx)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            path = Path(given[model]) if model in given else export_deploy(model, Path(tmp))
            for batch in (int(b) for b in args.batches.split(",")):
                modes = [("paused", args.pause)] + ([("back to back", 0.0)] if args.back_to_back else [])
                for mode, pause in modes:
                    ms = time_sessions(path, batch, args.rounds, pause, args.threads)
                    print(
                        f"{model:18s} batch {batch}  {mode:12s}  no spin {ms['no spin']:8.2f} ms  "
                        f"spin {ms['spin']:8.2f} ms  spin/no-spin {ms['spin'] / ms['no spin']:.3f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
