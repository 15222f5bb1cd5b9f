"""Accuracy and ORT CPU latency of precision variants of the shipped digits demo models.

    .venv/bin/python scripts/bench_precision.py --out /tmp/prec-bench [--rounds 30] [--threads 2]

Exports each demo checkpoint to fp32 ONNX (64 px), converts it with exporters.precision (fp16,
int8 cpu QOperator, int8 cpu QDQ, int8 tensorrt), evaluates all on the 359 held-out digits with
acmix_deploy.evaluate, and times fp32 vs the int8-cpu variants in ONNX Runtime CPU at batch 1 and 8,
interleaved round by round in one process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from acmix_deploy.datasets import write_digits_folder
from acmix_deploy.evaluate import evaluate
from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.exporters.precision import to_fp16, to_int8
from acmix_deploy.parity import random_inputs
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved

DEMO = Path(__file__).resolve().parents[1] / "acmix_deploy" / "data" / "demo"
MODELS = {"r26": "digits_acmix_resnet26.pth", "swin": "digits_acmix_swin.pth"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", default="r26,swin")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    out = args.out
    test = write_digits_folder(out / "digits-test", "test")
    train = write_digits_folder(out / "digits-train", "train")
    results = {}
    for name in args.models.split(","):
        fp32 = out / f"{name}.onnx"
        if not fp32.exists():
            export_onnx(DEMO / MODELS[name], fp32, img_size=64)
        variants = {"fp32": fp32}
        variants["fp16"] = to_fp16(fp32, out / f"{name}_fp16.onnx", force=True).path
        for label, target, fmt in (
            ("int8_cpu_qoperator", "cpu", "qoperator"),
            ("int8_cpu_qdq", "cpu", "qdq"),
            ("int8_tensorrt", "tensorrt", "qdq"),
        ):
            report = to_int8(
                fp32, out / f"{name}_{label}.onnx", calibration=train, target=target, cpu_format=fmt,
                samples=args.samples, force=True,
            )  # fmt: skip
            variants[label] = report.path
            print(name, label, "kept float:", report.details["excluded_nodes"], flush=True)
        rows = {}
        for label, path in variants.items():
            ev = evaluate(path, test, top_k=(1,), threads=args.threads)
            rows[label] = {"top1_percent": round(100 * ev.top1, 2), "predictions": ev.predictions}
        ref = rows["fp32"]["predictions"]
        for row in rows.values():
            row["agreement_percent"] = round(
                100 * sum(a == b for a, b in zip(row["predictions"], ref, strict=True)) / len(ref), 2
            )
            del row["predictions"]
        latency = {}
        for batch in (1, 8):
            x = random_inputs(batch, 64, seed=5)
            sessions = {
                k: ort_session(variants[k], threads=args.threads)
                for k in ("fp32", "int8_cpu_qoperator", "int8_cpu_qdq")
            }
            stats = time_interleaved(
                {k: (lambda s=s, x=x: s.run(None, {"input": x})) for k, s in sessions.items()},
                rounds=args.rounds,
                warmup=3,
            )
            latency[f"batch{batch}"] = {k: round(st.p50, 3) for k, st in stats.items()}
            base = latency[f"batch{batch}"]["fp32"]
            for k in ("int8_cpu_qoperator", "int8_cpu_qdq"):
                latency[f"batch{batch}"][f"speedup_{k}"] = round(base / latency[f"batch{batch}"][k], 2)
        results[name] = {"accuracy": rows, "latency_ms_p50": latency}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    (out / "bench_precision.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
