"""End-to-end export time of ACmix-ResNet-50, this tree against an earlier revision, interleaved in one process.

Usage: .venv/bin/python scripts/bench_export_time.py [--baseline 504830b] [--rounds 2] [--json out.json]

Makes a random-weight official-layout ACmix-ResNet-50 checkpoint (224 px), then exports it with
``exporters.onnx.export_onnx`` (validation on batches 1/2/7 and the latency check on, as
``acmix-deploy export`` runs it) alternately with this tree's exporter and with the baseline
revision's ``exporters/onnx.py`` + ``exporters/validate.py`` (read with ``git show``; every other
module is this tree's), the order rotating per round. Prints the median wall time and the median
of each stage export reports (the baseline does not time its latency check: that is the rest).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmix_deploy.checkpoint import save_checkpoint  # noqa: E402
from acmix_deploy.exporters import onnx as current  # noqa: E402
from acmix_deploy.models import build_model  # noqa: E402
from tests.conftest import randomize  # noqa: E402

STAGES = ("load", "rewrite", "export", "passes", "validate", "latency", "write")


def baseline_exporter(rev: str) -> types.ModuleType:
    """The ``exporters.onnx`` module of ``rev``, with its own ``validate``, beside this tree's other modules."""
    name = "acmix_deploy.exporters._baseline_" + rev
    package = types.ModuleType(name)
    package.__path__ = []
    sys.modules[name] = package
    for module in ("graph", "validate", "onnx"):
        if module == "graph":
            sys.modules[f"{name}.graph"] = importlib.import_module("acmix_deploy.exporters.graph")
            continue
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:exporters/{module}.py"], check=True, capture_output=True, text=True
        ).stdout
        mod = types.ModuleType(f"{name}.{module}")
        mod.__package__ = name
        sys.modules[mod.__name__] = mod
        exec(compile(source, f"{rev}:exporters/{module}.py", "exec"), mod.__dict__)  # our own history, read from git
    return sys.modules[f"{name}.onnx"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="504830b", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = {"baseline": baseline_exporter(args.baseline).export_onnx, "current": current.export_onnx}
    runs: dict[str, list[dict]] = {label: [] for label in paths}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "r50.pth"
        model = build_model("acmix_resnet50")
        with torch.no_grad():
            randomize(model, seed=0)
        save_checkpoint(model, ckpt, layout="official", name="acmix_resnet50")
        del model
        order = list(paths)
        for k in range(args.rounds):
            for label in order[k % 2 :] + order[: k % 2]:
                t0 = time.perf_counter()
                report = paths[label](ckpt, Path(tmp) / f"{label}.onnx", force=True, measure_latency=True)
                wall = time.perf_counter() - t0
                stages = dict(report.stage_seconds)
                stages.setdefault("latency", wall - sum(stages.values()))
                runs[label].append({"wall": wall, **stages, "parity_batches": report.parity.batches})
                print(f"round {k} {label:<8} {wall:6.1f} s  " + " ".join(f"{s} {stages.get(s, 0):.1f}" for s in STAGES))
    print(f"\nmedians over {args.rounds} rounds (s):")
    print(f"{'':<9}{'wall':>7}" + "".join(f"{s:>9}" for s in STAGES))
    for label, rows in runs.items():
        med = {key: statistics.median(r.get(key, 0.0) for r in rows) for key in ("wall", *STAGES)}
        print(f"{label:<9}{med['wall']:>7.1f}" + "".join(f"{med[s]:>9.1f}" for s in STAGES))
    base, cur = (statistics.median(r["wall"] for r in runs[x]) for x in ("baseline", "current"))
    print(f"current is {base / cur:.2f}x faster end to end; parity batches {runs['current'][0]['parity_batches']}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
