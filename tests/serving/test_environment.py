"""What serving checks before starting: platform, the extra, numpy against PyTriton's pin, the library path."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

from acmix_deploy.runtimes import MissingDependencyError
from acmix_deploy.serving import ServingError
from acmix_deploy.serving.environment import check_platform, numpy_conflict, server_environment

PYTRITON_REQUIRES = ["numpy<2.0.0,>=1.21", "protobuf>=3.7", 'pytest~=8.1.1; extra == "test"']


@pytest.mark.parametrize(("system", "machine"), [("Darwin", "arm64"), ("Windows", "AMD64"), ("Linux", "ppc64le")])
def test_unsupported_platform_is_refused_in_one_line(system, machine):
    with pytest.raises(ServingError, match="Linux x86-64 or aarch64") as info:
        check_platform(system, machine)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("system", "machine"), [("Linux", "x86_64"), ("Linux", "aarch64"), ("Linux", "arm64")])
def test_supported_platforms_pass(system, machine):
    check_platform(system, machine)


@pytest.mark.parametrize(
    ("requires", "version", "conflict"),
    [
        (PYTRITON_REQUIRES, "2.4.6", "numpy<2.0.0,>=1.21"),
        (PYTRITON_REQUIRES, "1.26.4", None),
        (["numpy>=1.21,<2"], "2.0.0", "numpy>=1.21,<2"),
        (["numpy>=1.21"], "2.4.6", None),
        (['numpy<2; extra == "old"'], "2.4.6", None),  # an extra's pin is not the package's
    ],
)
def test_numpy_conflict_reads_the_upper_bound(requires, version, conflict):
    assert numpy_conflict(requires, version) == conflict


def test_server_environment_puts_this_interpreters_libpython_first_then_restores(monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/other:" + sysconfig.get_config_var("LIBDIR"))
    with server_environment():
        first, *rest = os.environ["LD_LIBRARY_PATH"].split(os.pathsep)
    assert first == sysconfig.get_config_var("LIBDIR") and rest == ["/opt/other"]
    assert os.environ["LD_LIBRARY_PATH"] == "/opt/other:" + sysconfig.get_config_var("LIBDIR")
    monkeypatch.delenv("LD_LIBRARY_PATH")
    with server_environment():
        assert os.environ["LD_LIBRARY_PATH"].split(os.pathsep)[0] == sysconfig.get_config_var("LIBDIR")
    assert "LD_LIBRARY_PATH" not in os.environ


def test_missing_pytriton_names_the_extra(tmp_path):
    """With pytriton unimportable, the CLI says which extra to install, in one line, exit 1."""
    program = (
        "import sys; sys.modules['pytriton'] = None; sys.argv[0] = 'acmix-deploy'; "
        "from acmix_deploy.cli import main; main()"
    )
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"never read: the dependency check comes first")
    proc = subprocess.run(
        [sys.executable, "-c", program, "serve", str(artifact)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("starting")]
    assert lines == ["error: serving needs nvidia-pytriton: pip install 'acmix-deploy[serve]'"], proc.stderr


def test_missing_pytriton_is_a_missing_dependency_error(monkeypatch):
    from acmix_deploy.serving.environment import require_pytriton

    monkeypatch.setitem(sys.modules, "pytriton", None)
    with pytest.raises(MissingDependencyError, match=r"acmix-deploy\[serve\]"):
        require_pytriton()
