from __future__ import annotations

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
