"""Deploy ONNX latency against this machine's fp32 GEMM floor, measured in one process.

Usage: .venv/bin/python scripts/bench_floor.py [--models acmix_resnet50,acmix_swin_tiny] [--batches 1,8]
        [--rounds 7] [--threads 2] [--onnx MODEL[:TAG]=PATH ...] [--keep DIR] [--json out.json]

The floor of a model is its convolution + matrix-multiply work (MACs as ``acmix-deploy models``
counts them, times the batch) at the best fp32 rate this machine reaches: a 2048³ MatMul in
ONNX Runtime, same session factory, same thread count. The GEMM probe is timed interleaved with
the models (round after round, medians), so a neighbour's load moves the floor and the model
together and the ratio stays meaningful on a shared machine. Random official-style weights,
224 px; exports use ``validate=False`` (parity is the tests' job).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.models import build_model
from acmix_deploy.models.complexity import count_macs
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved

GEMM_N = 2048


def gemm_probe(threads: int):
    """A session computing one GEMM_N³ fp32 MatMul (B a constant, as model weights are), and its feed."""
    rng = np.random.default_rng(0)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [GEMM_N, GEMM_N])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [GEMM_N, GEMM_N])],
        [onnx.numpy_helper.from_array(b, "b")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    session = ort_session(proto, threads=threads)
    feed = {"a": rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)}
    return session, feed


def export_deploy(name: str, workdir: Path) -> Path:
    torch.manual_seed(0)
    path = workdir / f"{name}.onnx"
    export_onnx(build_model(name), path, img_size=224, validate=False, force=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--onnx",
        action="append",
        default=[],
        help="MODEL=PATH: reuse an existing deploy export; MODEL:TAG=PATH adds it as one more candidate "
        "(e.g. acmix_resnet50:before=old.onnx), timed in the same rounds",
    )
    parser.add_argument("--keep", type=Path, help="write the exports to this folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    batches = [int(b) for b in args.batches.split(",") if b]
    given = dict(item.split("=", 1) for item in args.onnx)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = {m: Path(given[m]) if m in given else export_deploy(m, workdir) for m in models}
        paths.update({label: Path(p) for label, p in given.items() if ":" in label})
        models = list(paths)
        macs = {m: count_macs(m.split(":")[0], 224) for m in models}
        sessions = {m: ort_session(paths[m], threads=args.threads) for m in models}
        gemm, gemm_feed = gemm_probe(args.threads)
        rows = []
        for batch in batches:
            x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            candidates = {"gemm": lambda: gemm.run(None, gemm_feed)}
            for m in models:
                candidates[m] = lambda s=sessions[m], x=x: s.run(None, {"input": x})
            stats = time_interleaved(candidates, rounds=args.rounds, warmup=1)
            gemm_ms = stats["gemm"].p50
            gflops = 2 * GEMM_N**3 / (gemm_ms / 1000) / 1e9
            print(
                f"batch {batch}: fp32 GEMM {GEMM_N}^3 {gemm_ms:.1f} ms = {gflops:.0f} GFLOP/s ({args.threads} threads)"
            )
            for m in models:
                floor_ms = 2 * macs[m] * batch / (gflops * 1e9) * 1000
                ms = stats[m].p50
                rows.append(
                    {
                        "model": m,
                        "batch": batch,
                        "ms": ms,
                        "floor_ms": floor_ms,
                        "ratio": ms / floor_ms,
                        "gmac": macs[m] / 1e9,
                        "gemm_gflops": gflops,
                    }
                )
                print(
                    f"  {m:<26} {ms:8.1f} ms   floor {floor_ms:7.1f} ms ({macs[m] / 1e9:.2f} GMAC/img)"
                    f"   ratio {ms / floor_ms:5.2f}x"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
