"""The README's Python examples run as written (on small stand-ins for the files they name)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 3


def test_readme_examples_run(tmp_path, monkeypatch):
    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint
    from acmix_deploy.exporters.onnx import export_onnx
    from tests.conftest import randomize

    model = randomize(acmix_deploy.build_model("acmix_resnet50", width=16, num_classes=10), seed=1)
    save_checkpoint(model, tmp_path / "r50.pth", layout="official", name="acmix_resnet50")
    export_onnx(tmp_path / "r50.pth", tmp_path / "out" / "r50.onnx", img_size=128, validate_batches=[1])
    Image.new("RGB", (160, 120), (90, 60, 30)).save(tmp_path / "cat.jpg")
    Image.new("L", (100, 140), 200).save(tmp_path / "dog.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in python_blocks():
        try:
            exec(compile(block, "README.md", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - report which block broke
            pytest.fail(f"README example failed: {type(exc).__name__}: {exc}\n{block}")
