"""Side-by-side latency of the reference model, its naive ONNX export and our deploy export.

Usage: .venv/bin/python scripts/bench_export.py [--models acmix_resnet50,acmix_swin_tiny] [--batches 1,8]
        [--rounds 7] [--json out.json]

For each model (random weights, 224 px) it exports two ONNX files with exporters.onnx
(``rewrite=False``: the reference model as torch.onnx.export sees it; ``rewrite=True``: our
deploy form), then times four candidates interleaved in one process, per batch size:
torch eager reference (the official model structure and numerics), torch eager deploy form,
ORT naive export, ORT deploy export. ORT: CPU provider, default threads, no spinning.
Prints medians and ratios against the torch reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.models import build_model
from acmix_deploy.rewrite import to_deploy
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved


def bench_model(name: str, batches: list[int], rounds: int, workdir: Path) -> dict:
    torch.manual_seed(0)
    reference = build_model(name)
    result: dict = {"model": name, "export_seconds": {}, "batches": {}}
    paths = {}
    for label, rewrite in (("naive", False), ("deploy", True)):
        t0 = time.perf_counter()
        report = export_onnx(reference, workdir / f"{name}.{label}.onnx", rewrite=rewrite, validate_batches=[1])
        result["export_seconds"][label] = round(time.perf_counter() - t0, 1)
        result[f"{label}_nodes"] = report.nodes
        paths[label] = report.path
    deploy = to_deploy(reference, img_size=224)
    sessions = {label: ort_session(path) for label, path in paths.items()}
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
        xt = torch.from_numpy(x)
        candidates = {
            "torch_reference": lambda xt=xt: reference(xt),
            "torch_deploy": lambda xt=xt: deploy(xt),
            "ort_naive": lambda x=x: sessions["naive"].run(None, {"input": x}),
            "ort_deploy": lambda x=x: sessions["deploy"].run(None, {"input": x}),
        }
        with torch.no_grad():
            stats = time_interleaved(candidates, rounds=rounds, warmup=1)
        medians = {k: round(v.p50, 1) for k, v in stats.items()}
        result["batches"][batch] = {
            "median_ms": medians,
            "speedup_vs_torch_reference": {k: round(medians["torch_reference"] / v, 2) for k, v in medians.items()},
            "ort_deploy_vs_ort_naive": round(medians["ort_naive"] / medians["ort_deploy"], 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            res = bench_model(name, batches, args.rounds, Path(tmp))
            results.append(res)
            nodes = f"nodes naive {res['naive_nodes']} deploy {res['deploy_nodes']}"
            print(f"\n{name}: export s {res['export_seconds']}, {nodes}")
            print(f"{'batch':>5} {'candidate':<16} {'median ms':>10} {'x vs torch ref':>15}")
            for batch, row in res["batches"].items():
                for cand, ms in row["median_ms"].items():
                    print(f"{batch:>5} {cand:<16} {ms:>10.1f} {row['speedup_vs_torch_reference'][cand]:>15.2f}")
                print(f"{batch:>5} ORT deploy vs ORT naive: {row['ort_deploy_vs_ort_naive']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
