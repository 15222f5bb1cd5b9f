"""Checkpoints crafted to exhaust memory or the disk, hang the reader, or reach the terminal: refused in one line."""

from __future__ import annotations

import collections
import io
import subprocess
import sys
import tarfile
import time

import pytest
import torch

from acmix_deploy.checkpoint import read_checkpoint
from acmix_deploy.errors import CheckpointError
from acmix_deploy.models import build_model
from tests.conftest import SMALL_RESNET, randomize


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, torch.Tensor]:
    model = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=3)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _refused(path, fragment: str) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message
    return message


def test_stride_zero_tensor_claiming_more_than_its_storage_is_refused(weights, tmp_path):
    # One stored float posing as the whole classifier: before the check this loaded as a 10x512 weight.
    crafted = dict(weights)
    crafted["fc.weight"] = torch.zeros(1).as_strided(weights["fc.weight"].shape, (0, 0))
    torch.save({"state_dict": crafted}, tmp_path / "stride0.pth")
    assert "nothing was allocated" in _refused(tmp_path / "stride0.pth", "overlaps itself")


def test_overlapping_rows_are_refused(weights, tmp_path):
    crafted = dict(weights)
    rows, cols = weights["fc.weight"].shape
    crafted["fc.weight"] = torch.zeros(rows + cols).as_strided((rows, cols), (1, 1))  # each row shifted by one
    torch.save({"state_dict": crafted}, tmp_path / "overlap.pth")
    _refused(tmp_path / "overlap.pth", "overlaps itself")


def test_many_views_of_one_storage_exceed_the_file_budget(weights, tmp_path):
    crafted = dict(weights)
    shared = torch.zeros(1 << 20)  # 4 MiB stored once, claimed 40 times (160 MiB > file + 64 MiB)
    crafted.update({f"extra{i}": shared[i:] for i in range(40)})
    torch.save({"state_dict": crafted}, tmp_path / "views.pth")
    _refused(tmp_path / "views.pth", "claim more bytes than the file holds")


def test_legitimate_views_still_load(weights, tmp_path):
    # Transposed, sliced and shared-storage tensors (tied weights) are ordinary; they must keep loading.
    crafted = dict(weights)
    crafted["fc.weight"] = weights["fc.weight"].t().contiguous().t()
    padded = torch.cat([weights["fc.bias"], torch.zeros(3)])
    crafted["fc.bias"] = padded[:10]
    torch.save({"state_dict": crafted}, tmp_path / "views_ok.pth")
    ck = read_checkpoint(tmp_path / "views_ok.pth")
    assert torch.equal(ck.state_dict["fc.weight"], weights["fc.weight"])


class _OutOfStorage:
    def __reduce__(self):
        storage = torch.zeros(4)._typed_storage()
        return (torch._utils._rebuild_tensor_v2, (storage, 0, (10**6,), (1,), False, collections.OrderedDict()))


def test_view_past_the_end_of_its_storage_is_refused(weights, tmp_path):
    torch.save({"state_dict": {**weights, "fc.bias": _OutOfStorage()}}, tmp_path / "past.pth")
    _refused(tmp_path / "past.pth", "storage holding 4")


def test_meta_tensors_are_refused(weights, tmp_path):
    torch.save({"state_dict": {**weights, "fc.bias": torch.empty(10, device="meta")}}, tmp_path / "meta.pth")
    _refused(tmp_path / "meta.pth", "meta tensor")


def _legacy_tar(path, member: tarfile.TarInfo) -> None:
    """A tar archive whose first byte is 0x80, the byte our sniffing takes for a legacy torch pickle."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        first = tarfile.TarInfo("\x80pad")
        first.size = 1
        tar.addfile(first, io.BytesIO(b"x"))
        tar.addfile(member)
    assert path.read_bytes()[:1] == b"\x80"


def _member(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo("storages")
    info.type = {"fifo": tarfile.FIFOTYPE, "symlink": tarfile.SYMTYPE, "device": tarfile.CHRTYPE}[kind]
    info.linkname = "/etc/passwd" if kind == "symlink" else ""
    return info


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device"])
def test_legacy_tar_format_is_refused_without_extracting_anything(tmp_path, kind):
    path = tmp_path / f"{kind}.pth"
    _legacy_tar(path, _member(kind))
    # In a child process with a deadline: before the fix a FIFO member blocked the read forever.
    code = f"from acmix_deploy.checkpoint import read_checkpoint\nread_checkpoint({str(path)!r})"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 60
    assert "tar checkpoint format is not read" in proc.stderr.splitlines()[-1], proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("acmix_deploy.errors.CheckpointError")


def test_legacy_pickle_format_still_loads(weights, tmp_path):
    torch.save({"state_dict": weights}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert read_checkpoint(tmp_path / "legacy.pth").file_format == "torch-legacy"


def test_self_referencing_metadata_is_cut_not_a_recursion_error(weights, tmp_path):
    loop: list = []
    loop.append(loop)
    torch.save({"state_dict": weights, "arch": loop, "epoch": 3}, tmp_path / "loop.pth")
    ck = read_checkpoint(tmp_path / "loop.pth")
    depth, node = 0, ck.metadata["arch"]
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert node == "..." and depth < 40 and ck.metadata["epoch"] == 3


def test_control_characters_in_metadata_are_escaped(weights, tmp_path):
    arch = "acmix\x1b]0;owned\x07\x1b[2J\rok\u202e"
    torch.save({"state_dict": weights, "arch": arch, "config": {"\x1b[31mkey": "v"}}, tmp_path / "ansi.pth")
    ck = read_checkpoint(tmp_path / "ansi.pth")
    assert ck.metadata["arch"] == "acmix\\x1b]0;owned\\x07\\x1b[2J\\x0dok\\u202e"
    assert list(ck.metadata["config"]) == ["\\x1b[31mkey"]


def test_control_characters_in_safetensors_metadata_are_escaped(tmp_path):
    from safetensors.torch import save_file

    model = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=3)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "evil.safetensors", metadata={"arch": "\x1b[5mblink"})
    assert read_checkpoint(tmp_path / "evil.safetensors").metadata["arch"] == "\\x1b[5mblink"


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "F32", "shape": [0, 10**30], "data_offsets": [0, 0]},
        {"dtype": "F32", "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]},
        {"dtype": "F32", "shape": [1.0, 2.5], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]},
        {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]},
    ],
    ids=["overflow", "stride-overflow", "float-shape", "float-offsets", "bool-shape"],
)
def test_safetensors_headers_that_overflow_or_are_not_integers_are_one_line(tmp_path, entry):
    # Fixed since the reader went through the safetensors package: kept so it stays fixed.
    import json
    import struct

    head = json.dumps({"w": entry}).encode()
    size = entry["data_offsets"][1]
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * int(size))
    _refused(tmp_path / "x.safetensors", "safetensors")
