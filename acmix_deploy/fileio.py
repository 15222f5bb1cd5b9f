"""Atomic, non-destructive file writes: every artifact appears whole or not at all.

Writers produce a temporary file in the destination directory, then ``os.replace`` it into
place, so an interrupted run never leaves a half-written file and never damages what the
user had. An existing destination is only replaced when the caller passes ``force=True``.

The temporary is private (mode 0600) while it is written; before the rename it gets the mode a
plain ``open(path, "w")`` would give: that of the file it replaces, else ``0666 & ~umask``. Without
this the private mode would survive the rename and a server or colleague running as another user
could not read the artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import AcmixDeployError


class OutputExistsError(AcmixDeployError):
    """The destination exists and ``force`` was not given."""


class LinkedDestinationError(AcmixDeployError):
    """The destination (or, where refused, the folder it goes into) is a symbolic link."""


def check_writable(path: str | Path, *, force: bool, linked_folder_ok: bool = True) -> Path:
    """Validate a destination before any expensive work: parent writable, no clobbering without force.

    A destination that is a symbolic link is refused, ``force`` or not: replacing it would either
    write through the link (somewhere the user did not name) or swap the link for a file, and
    neither is what was asked. ``linked_folder_ok=False`` refuses a destination folder that is a
    link too (``export -o DIR``: the files would land in whatever DIR points to).
    """
    path = Path(path)
    if path.is_symlink():
        raise LinkedDestinationError(
            f"{path} is a symbolic link: refusing to write through it (remove it or pick another path)"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not linked_folder_ok and parent.is_symlink():
        raise LinkedDestinationError(
            f"cannot write {path}: folder {parent} is a symbolic link (give the folder it points to)"
        )
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists (use --force to overwrite)")
    if path.is_dir():
        raise AcmixDeployError(f"{path} is a directory, expected a file path")
    if parent.exists() and not parent.is_dir():
        raise AcmixDeployError(f"cannot write {path}: {parent} is not a directory")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise AcmixDeployError(f"cannot write {path}: directory {parent} is not writable")
    return path


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows.

    ``os.umask`` can only be read by setting it, which briefly changes the mode of files other
    threads create; Linux exposes it in ``/proc/self/status``, so that is tried first.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def plain_mode(*, directory: bool = False) -> int:
    """The mode a plain ``open(..., "w")`` (or ``mkdir``) gives a new file (directory) under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def _final_mode(path: Path) -> int:
    """The mode ``path`` should have once written: the mode of the file it replaces, else a plain write's."""
    try:
        existing = path.stat()
    except OSError:
        return plain_mode()
    return stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else plain_mode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete temporaries that killed writers of ``path`` left behind (their process no longer exists).

    A SIGKILL gives a writer no chance to clean up; the temporary is hidden and never replaces the
    destination, but it would otherwise stay forever. Temporaries of live writers are kept.
    """
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.partial"):
        parts = tmp.name[len(path.name) + 2 :].split(".")
        if parts and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it into place, on failure delete it.

    The file that appears has the mode a plain write would give it (see the module docstring).
    """
    path = check_writable(path, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise AcmixDeployError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if path.is_symlink() or (path.exists() and not force):  # appeared meanwhile: still never clobber
            check_writable(path, force=force)
        # Set on the path, just before the rename: some writers recreate the temporary by name.
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes, *, force: bool = False) -> Path:
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, force: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), force=force)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_bounded_text(
    path: Path, what: str, limit: int, *, error: type[AcmixDeployError] = AcmixDeployError, shown: str | None = None
) -> str:
    """The UTF-8 text of a small metadata file (sidecar, labels), refused in one line when it is not that.

    Args:
        path: the file.
        what: how messages name it ("manifest sidecar", "labels file").
        limit: the largest size accepted, in bytes (a multiple of 1 MiB reads best in messages).
        error: the error type to raise.
        shown: how messages show the path (default ``str(path)``; callers escape untrusted names).

    Raises:
        error: too large, not UTF-8, or unreadable.
    """
    name = str(path) if shown is None else shown
    try:
        if path.stat().st_size > limit:
            raise error(f"{name}: {what} larger than {limit >> 20} MiB")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{name}: {what} is not UTF-8 text") from None
    except OSError as exc:
        raise error(f"{name}: cannot read {what} ({exc.strerror or exc})") from None
