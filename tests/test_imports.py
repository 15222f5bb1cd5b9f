"""Layering and optional dependencies: the package imports without tensorrt, and layers point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_package_imports_without_tensorrt_or_gpu_packages():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'tensorrt', 'pycuda', 'cuda'}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import acmix_deploy, acmix_deploy.exporters, acmix_deploy.runtimes, acmix_deploy.cli\n"
        "assert 'tensorrt' not in sys.modules\n"
        "print(len(acmix_deploy.list_models()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5"


def _imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_layers_point_one_way():
    core = {"acmix_deploy/models", "acmix_deploy/checkpoint"}
    for sub in core:
        imported = _imported_packages(sub)
        assert not imported & {"exporters", "runtimes", "cli", "onnxruntime", "tensorrt"}, (sub, imported)
    assert "exporters" not in _imported_packages("runtimes")
    assert "cli" not in _imported_packages("acmix_deploy") | _imported_packages("exporters")
