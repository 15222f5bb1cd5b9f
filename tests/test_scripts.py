"""The benchmark scripts run end to end (smallest settings): their numbers are only quoted, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_bench_gpu_dry_run_on_cpu(tmp_path):
    proc = _run("scripts/bench_gpu.py", "--allow-cpu", "--models", "acmix_resnet26", "--batches", "1",
                "--iters", "1", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    rows = result["models"]["acmix_resnet26"]["rows"]
    assert [r["artifact"] for r in rows] == ["torch eager fp32 (cpu, official)", "onnxruntime CPU fp32"]
    assert any("TensorRT" in s for s in result["models"]["acmix_resnet26"]["skipped"])


def test_bench_gpu_refuses_without_gpu_unless_asked():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = _run("scripts/bench_gpu.py", "--models", "acmix_resnet26")
    assert proc.returncode != 0 and "--allow-cpu" in proc.stderr


def test_bench_int8_kernels_prints_every_shape():
    proc = _run("scripts/bench_int8_kernels.py", "--rounds", "1", "--batches", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("x\n") >= 14 and "time-weighted" in proc.stdout
