"""int8 on a full-size model in ONNX Runtime CPU: static (ours, cpu target) and dynamic quantization vs fp32.

Usage: .venv/bin/python scripts/bench_int8_fullsize.py [--model acmix_swin_tiny] [--rounds 7]

Random weights and random calibration inputs (speed only; accuracy is measured on the trained demo
models by scripts/bench_precision.py). All variants are timed interleaved in one process; medians.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.exporters.precision import MEASURE_ONLY, to_int8
from acmix_deploy.models import build_model
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="acmix_swin_tiny")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fp32 = export_onnx(build_model(args.model), root / "fp32.onnx", validate_batches=[1]).path
        calib = np.random.default_rng(0).standard_normal((16, 3, 224, 224), dtype=np.float32)
        paths = {"fp32": fp32}
        for fmt in ("qoperator", "qdq"):
            paths[f"static_{fmt}"] = root / f"{fmt}.onnx"
            to_int8(
                fp32,
                paths[f"static_{fmt}"],
                calibration=calib,
                samples=16,
                target="cpu",
                cpu_format=fmt,
                sensitivity=False,
                tolerance=MEASURE_ONLY,  # random weights and inputs: speed only
            )
        paths["dynamic_matmul_gemm"] = root / "dynamic.onnx"
        quantize_dynamic(
            fp32, paths["dynamic_matmul_gemm"], op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
        )
        sessions = {name: ort_session(path) for name, path in paths.items()}
        for batch in (1, 8):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            stats = time_interleaved(
                {name: (lambda s=s, x=x: s.run(None, {"input": x})) for name, s in sessions.items()},
                rounds=args.rounds,
                warmup=1,
            )
            base = stats["fp32"].p50
            cells = ", ".join(f"{name} {st.p50:.1f} ms ({base / st.p50:.2f}x)" for name, st in stats.items())
            print(f"{args.model} batch {batch}: {cells}")


if __name__ == "__main__":
    main()
