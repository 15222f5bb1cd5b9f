"""What the bundled Triton server needs from this machine, checked before anything starts.

The ``serve`` extra brings ``nvidia-pytriton``, whose wheel carries a ``tritonserver`` binary and
its Python backend. Three things can go wrong, each caught here with one line that says what to do
instead of a server that dies during start-up or answers wrongly:

* the package is missing (the extra was not installed);
* the platform has no wheel (PyTriton ships Linux x86-64 and aarch64 builds only);
* numpy 2 with a PyTriton that pins ``numpy<2``: the backend then returns empty output tensors
  without any error, so we refuse to start rather than serve zeros.

The fourth pitfall is fixed rather than refused: the backend stub links the system's
``libpython3.X.so``, and when the running interpreter is another build of the same version (a
pyenv Python under a venv) its standard library does not match that library and model start-up
fails with ``'_thread.RLock' object has no attribute '_recursion_count'``.
:func:`server_environment` puts the running interpreter's own library directory first on
``LD_LIBRARY_PATH`` while the server starts; PyTriton hands our environment to the server process.
"""

from __future__ import annotations

import os
import platform
import re
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from acmix_deploy.runtimes import MissingDependencyError

from .errors import ServingError

DISTRIBUTION = "nvidia-pytriton"
INSTALL_HINT = "pip install 'acmix-deploy[serve]'"
SUPPORTED_PLATFORMS = (("linux", "x86_64"), ("linux", "aarch64"))


def check_platform(system: str | None = None, machine: str | None = None) -> None:
    """Refuse a platform PyTriton has no server build for."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if (system, machine) not in SUPPORTED_PLATFORMS:
        raise ServingError(
            f"serving needs a Linux x86-64 or aarch64 machine (PyTriton ships its Triton server only there); "
            f"this is {system} {machine}: export a Triton model repository instead (acmix-deploy triton)"
        )


def numpy_conflict(requirements: list[str], numpy_version: str) -> str | None:
    """The ``numpy<N`` requirement ``numpy_version`` breaks, if any (e.g. ``"numpy<2.0.0"``)."""
    major = int(numpy_version.split(".")[0])
    for requirement in requirements:
        if ";" in requirement:  # an extra's requirement, not the package's own
            continue
        match = re.match(r"numpy\s*(?:[^;]*,)?\s*<\s*(\d+)", requirement.replace(" ", ""))
        if match and major >= int(match.group(1)):
            return requirement.strip()
    return None


def require_pytriton() -> None:
    """Fail with one line when the Triton server cannot run here; return quietly when it can."""
    check_platform()
    try:
        import pytriton  # noqa: F401 - only whether it imports
    except ImportError:
        raise MissingDependencyError(f"serving needs {DISTRIBUTION}: {INSTALL_HINT}") from None
    import numpy

    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # importable but not installed as a distribution: nothing to check
        requirements = []
    conflict = numpy_conflict(requirements, numpy.__version__)
    if conflict is not None:
        raise ServingError(
            f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)} requires {conflict} but numpy {numpy.__version__} "
            f"is installed (its backend would answer with empty tensors): pip install 'numpy<2'"
        )


def interpreter_library_dir() -> Path | None:
    """Directory holding the running interpreter's shared ``libpython``, if it has one."""
    libdir, library = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not library or not (Path(libdir) / library).exists():
        return None  # a statically linked interpreter: the stub can only use the system's library
    return Path(libdir)


@contextmanager
def server_environment() -> Iterator[None]:
    """While the server starts: the interpreter's ``libpython`` directory first on ``LD_LIBRARY_PATH``."""
    libdir = interpreter_library_dir()
    previous = os.environ.get("LD_LIBRARY_PATH")
    if libdir is not None:
        rest = [p for p in (previous or "").split(os.pathsep) if p and p != str(libdir)]
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([str(libdir), *rest])
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = previous
