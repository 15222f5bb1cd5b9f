"""inspect of an ONNX model stays a metadata read: manifest and graph inputs/outputs from the file, no onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_inspect_compares_manifest_and_graph_without_importing_onnx(small_artifacts):
    code = (
        "import sys\n"
        "from acmix_deploy.exporters.artifact_info import inspect_onnx\n"
        f"info = inspect_onnx({str(small_artifacts['onnx'])!r})\n"
        "assert info.manifest is not None and info.problem == '', info.problem\n"
        "assert 'onnx' not in sys.modules, 'inspect imported onnx (it loaded the whole graph)'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
