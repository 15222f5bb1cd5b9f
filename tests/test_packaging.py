"""The wheel installs everything under the acmix_deploy namespace and works beside a user's own modules.

The repository keeps exporters/, runtimes/ and cli.py at the top; installed, they are
acmix_deploy.exporters, acmix_deploy.runtimes and acmix_deploy.cli, so they neither collide with the
index's ``exporters``/``runtimes`` distributions nor shadow (or get shadowed by) an application's
own ``cli.py`` - exactly where users embed the Predictor.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_in_the_tree_is_declared():
    found = set()
    for top, dotted in (
        ("acmix_deploy", "acmix_deploy"),
        ("exporters", "acmix_deploy.exporters"),
        ("runtimes", "acmix_deploy.runtimes"),
    ):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join([dotted, *rel]))
    assert found == _declared_packages()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("acmix_deploy-*.whl"))


@pytest.mark.slow
def test_wheel_has_one_top_level_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"acmix_deploy", wheel.name.split("-py3")[0] + ".dist-info"}
    for needed in (
        "acmix_deploy/cli.py",
        "acmix_deploy/exporters/onnx.py",
        "acmix_deploy/runtimes/base.py",
        "acmix_deploy/data/imagenet1k_labels.txt",
        "acmix_deploy/data/imagenet1k_wnids.txt",
        "acmix_deploy/manifest/reader.py",
    ):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "acmix-deploy = acmix_deploy.cli:main" in entry_points


@pytest.mark.slow
def test_installed_wheel_runs_beside_the_users_own_cli_exporters_runtimes(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (torch, onnx, ...) come from this environment as a plain path entry: its .pth
    # files, among them the editable install of the checkout, are not processed there.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    app = tmp_path / "app"
    for mod in ("cli.py", "exporters/__init__.py", "runtimes/__init__.py"):
        (app / mod).parent.mkdir(parents=True, exist_ok=True)
        (app / mod).write_text("raise SystemExit('the application module was imported by acmix_deploy')\n")
    models = subprocess.run(
        [str(venv / "bin" / "acmix-deploy"), "models"], cwd=app, capture_output=True, text=True, timeout=300
    )
    assert models.returncode == 0, models.stderr
    assert "acmix_resnet50" in models.stdout
    code = (
        "import acmix_deploy, acmix_deploy.cli, acmix_deploy.exporters.onnx, acmix_deploy.runtimes\n"
        "from acmix_deploy import Predictor\n"
        "print(acmix_deploy.__file__)\n"
    )
    proc = subprocess.run([str(py), "-c", code], cwd=app, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(site)
