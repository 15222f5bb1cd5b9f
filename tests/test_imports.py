"""Layering and optional dependencies: the package imports without tensorrt, and layers point one way.

Layers, bottom up: the model core (models, checkpoint, rewrite, manifest, families and the small
utilities they share) <- runtimes and exporters <- the serving facade (Predictor, batching,
evaluate, profiling) <- the CLI. Every module is read (function-level imports included) and must
belong to a layer, so a new module cannot slip in unclassified.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import acmix_deploy

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"onnx", "onnxruntime", "onnx_graphsurgeon", "tensorrt"}
CORE_PACKAGES = ("models", "checkpoint", "rewrite", "manifest", "families")
CORE_UTILITIES = (
    "errors", "fileio", "parity", "preprocess", "labels", "datasets", "timing", "imagefolder", "classmap", "text",
    "lazy",
)  # fmt: skip
FACADE = ("predictor", "batching", "evaluate", "side_by_side", "verify", "profiling", "serving")
# Which layers each layer may import (besides itself and third-party packages).
ALLOWED = {
    "core": {"core"},
    "runtimes": {"core", "runtimes"},
    "exporters": {"core", "runtimes", "exporters"},
    "facade": {"core", "runtimes", "facade"},
    "cli": {"core", "runtimes", "exporters", "facade", "cli"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("exporters", "runtimes"):
        parts = ["acmix_deploy", *parts]
    elif parts == ["cli"]:
        parts = ["acmix_deploy", "cli"]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of an ``acmix_deploy`` module (None for anything else)."""
    parts = module.split(".")
    if parts[0] != "acmix_deploy":
        return None
    if len(parts) == 1:
        return "core"  # the package face: a version and lazy re-exports, importing nothing itself
    head = parts[1]
    if head in acmix_deploy._EXPORTS:  # a name the face re-exports: the layer of the module owning it
        return layer_of("acmix_deploy" + acmix_deploy._EXPORTS[head])
    if head in CORE_PACKAGES or head in CORE_UTILITIES:
        return "core"
    if head in ("exporters", "runtimes", "cli"):
        return head
    if head == "commands":  # the CLI's command implementations, wired by cli.py
        return "cli"
    if head in FACADE:
        return "facade"
    if head == "data":
        return "core"
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_imports.py and docs/architecture.md")


def _sources() -> list[Path]:
    files = [p for top in ("acmix_deploy", "exporters", "runtimes") for p in (ROOT / top).rglob("*.py")]
    return [p for p in [*files, ROOT / "cli.py"] if not p.is_symlink()]


def _imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports at run time, relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports never run
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return found


def _violations() -> list[str]:
    problems = []
    for path in _sources():
        own = layer_of(_module_name(path))
        for name in sorted(_imports(path)):
            if own == "core" and name.split(".")[0] in HEAVY:
                problems.append(f"{path.relative_to(ROOT)} (core) imports {name}")
            try:
                target = layer_of(name)
            except AssertionError:
                continue  # `from pkg import name` also lists names that are not modules
            if target is not None and target not in ALLOWED[own]:
                problems.append(f"{path.relative_to(ROOT)} ({own}) imports {name} ({target})")
    return problems


def test_every_module_belongs_to_a_layer():
    for path in _sources():
        assert layer_of(_module_name(path)) is not None, path


def test_layers_point_one_way():
    assert _violations() == []


def test_layering_check_can_fail(tmp_path, monkeypatch):
    """The checker sees a forbidden import (core -> runtimes, core -> onnx) where there is one."""
    fake = ROOT / "acmix_deploy" / "models" / "_layering_probe.py"
    fake.write_text("def f():\n    from acmix_deploy.runtimes import open_runner\n    import onnx\n")
    try:
        found = _violations()
    finally:
        fake.unlink()
    assert any("_layering_probe" in v and "runtimes" in v for v in found)
    assert any("_layering_probe" in v and "imports onnx" in v for v in found)


def _blocked_import(modules: str, blocked: set[str]) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"BLOCKED = {sorted(blocked)!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {modules}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)


def test_package_imports_without_tensorrt_or_gpu_packages():
    proc = _blocked_import(
        "acmix_deploy, acmix_deploy.exporters, acmix_deploy.runtimes, acmix_deploy.cli\n"
        "print(len(acmix_deploy.list_models()))",
        {"tensorrt", "pycuda", "cuda"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5", "[]"]


@pytest.mark.parametrize("module", [f"acmix_deploy.{name}" for name in CORE_PACKAGES])
def test_core_runs_without_onnx_or_onnxruntime(module):
    proc = _blocked_import(module, HEAVY)
    assert proc.returncode == 0, proc.stderr


def test_reading_a_manifest_needs_no_torch_or_onnx():
    proc = _blocked_import("acmix_deploy.manifest", {"torch", *HEAVY})
    assert proc.returncode == 0, proc.stderr
