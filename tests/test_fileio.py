"""Atomic writes: the file that appears is readable as a plain write's would be, and never clobbers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from acmix_deploy.fileio import (
    OutputExistsError,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    current_umask,
    plain_mode,
)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o007, 0o660)])
def test_new_files_get_the_mode_of_a_plain_write(tmp_path, mask, expected):
    with umask(mask):
        atomic_write_text(tmp_path / "report.json", "{}\n")
        atomic_write_bytes(tmp_path / "sub" / "model.onnx", b"\x08\x07")
        with atomic_output(tmp_path / "via_writer.bin") as tmp:  # a writer that recreates the file by name
            tmp.unlink()
            tmp.write_bytes(b"x")
        (tmp_path / "plain.txt").write_text("reference")
    for name in ("report.json", "sub/model.onnx", "via_writer.bin", "plain.txt"):
        assert mode(tmp_path / name) == expected, name
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)])
def test_plain_mode_follows_the_umask_and_leaves_it_alone(mask, file_mode, dir_mode):
    with umask(mask):
        assert current_umask() == mask
        assert plain_mode() == file_mode and plain_mode(directory=True) == dir_mode
        assert current_umask() == mask


def test_overwrite_keeps_the_replaced_files_mode(tmp_path):
    target = tmp_path / "labels.txt"
    target.write_text("old\n")
    target.chmod(0o640)
    with umask(0o077):
        with pytest.raises(OutputExistsError):
            atomic_write_text(target, "new\n")
        atomic_write_text(target, "new\n", force=True)
    assert target.read_text() == "new\n" and mode(target) == 0o640


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "x.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []


def test_a_linked_destination_is_refused_force_or_not_and_regular_files_keep_force(tmp_path):
    from acmix_deploy.fileio import LinkedDestinationError

    target = tmp_path / "target.bin"
    target.write_bytes(b"theirs")
    (tmp_path / "link.bin").symlink_to(target)
    for force in (False, True):
        with pytest.raises(LinkedDestinationError, match="symbolic link"):
            atomic_write_bytes(tmp_path / "link.bin", b"mine", force=force)
    assert target.read_bytes() == b"theirs" and (tmp_path / "link.bin").is_symlink()
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(target, b"mine")
    atomic_write_bytes(target, b"mine", force=True)
    assert target.read_bytes() == b"mine"
    (tmp_path / "linked").symlink_to(tmp_path, target_is_directory=True)
    assert atomic_write_bytes(tmp_path / "linked" / "new.bin", b"x") == tmp_path / "linked" / "new.bin"  # folders: ok
