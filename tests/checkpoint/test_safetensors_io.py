from __future__ import annotations

import json
import struct

import pytest
import torch

from acmix_deploy.checkpoint.safetensors_io import looks_like_safetensors, read_safetensors, safetensors_bytes
from acmix_deploy.errors import CheckpointError


def test_round_trip_all_dtypes(tmp_path):
    tensors = {
        "f32": torch.randn(2, 3),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(4).bfloat16(),
        "i64": torch.arange(5),
        "b": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    (tmp_path / "t.safetensors").write_bytes(safetensors_bytes(tensors, {"k": "v"}))
    back, meta = read_safetensors(tmp_path / "t.safetensors")
    assert meta == {"k": "v"}
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t)


def test_header_sniffing_and_bad_headers(tmp_path):
    data = safetensors_bytes({"a": torch.ones(2)})
    assert looks_like_safetensors(data[:16])
    assert not looks_like_safetensors(b"PK\x03\x04" + b"\0" * 12)
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_safetensors(tmp_path / "bad.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(CheckpointError, match="exceeds the file"):
        read_safetensors(tmp_path / "huge.safetensors")


def _file(tmp_path, header: dict, body: bytes = b"") -> object:
    head = json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(head)) + head + body)
    return path


def test_files_of_the_reference_writer_read_back_and_ours_read_there(tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = {"w": torch.randn(3, 4), "n": torch.arange(6, dtype=torch.int32).reshape(2, 3)}
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"img_size": "64"})
    back, meta = read_safetensors(tmp_path / "ref.safetensors")
    assert meta == {"img_size": "64"} and all(torch.equal(back[k], v) for k, v in tensors.items())
    shared = torch.randn(4)
    (tmp_path / "ours.safetensors").write_bytes(safetensors_bytes({"a": shared, "b": shared, "v": shared[1:3]}))
    there = load_file(tmp_path / "ours.safetensors")
    assert torch.equal(there["a"], shared) and torch.equal(there["b"], shared) and torch.equal(there["v"], shared[1:3])


def test_huge_claims_are_refused_before_allocating(tmp_path):
    terabytes = {"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 4 * 2**40]}}
    with pytest.raises(CheckpointError, match="outside the file"):
        read_safetensors(_file(tmp_path, terabytes, b"\0" * 4))
    overflow = {"w": {"dtype": "F32", "shape": [2**32, 2**32, 2**32], "data_offsets": [0, 4]}}
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        read_safetensors(_file(tmp_path, overflow, b"\0" * 4))


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 6, "leaves part of it unused"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "malformed safetensors header"),
        (
            {"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}},
            b"\0" * 2,
            r"unsupported tensor dtype in w",
        ),
        (
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"k": 1}},
            b"\0" * 4,
            "malformed",
        ),
    ],
    ids=["trailing-bytes", "negative-dim", "float8", "metadata-not-string"],
)
def test_package_errors_become_one_line_checkpoint_errors(tmp_path, header, body, message):
    with pytest.raises(CheckpointError, match=message) as info:
        read_safetensors(_file(tmp_path, header, body))
    assert "\n" not in str(info.value) and type(info.value) is CheckpointError


def test_metadata_order_does_not_change_the_bytes(tmp_path):
    """The package orders metadata by a per-process hash: the same checkpoint must still give the same file."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from acmix_deploy.checkpoint.safetensors_io import safetensors_bytes\n"
        "meta = {k: str(i) for i, k in enumerate(['format', 'arch', 'img_size', 'labels', 'epoch', 'best'])}\n"
        "sys.stdout.buffer.write(safetensors_bytes({'w': torch.arange(4.0)}, meta))\n"
    )
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout for _ in range(4)}
    assert len(outputs) == 1
    path = tmp_path / "m.safetensors"
    path.write_bytes(outputs.pop())
    tensors, metadata = read_safetensors(path)
    assert list(metadata) == sorted(metadata) and tensors["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
