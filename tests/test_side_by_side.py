"""Inputs files of a comparison (``verify --load-inputs``): untrusted data, refused in one line unless they fit."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

from acmix_deploy import side_by_side
from acmix_deploy.side_by_side import INPUTS_KIND, ArrayFileError, load_inputs, npz_bytes, output_file_names


def write(path, **arrays):
    path.write_bytes(npz_bytes(arrays))
    return path


def npy_bytes(x: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def pickled_npy() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([object()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_a_saved_inputs_file_loads_back_bit_for_bit(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8), dtype=np.float32)
    loaded, kind = load_inputs(write(tmp_path / "a.npz", input=x, **{INPUTS_KIND: np.array("random")}), "input", 8)
    assert kind == "random" and loaded.dtype == np.float32 and loaded.tobytes() == x.tobytes()
    assert load_inputs(write(tmp_path / "b.npz", input=x), "input", 8)[1] == "images"  # the user's own data


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_bytes(pickle.dumps({"input": 1})), "not an .npz"),
        (lambda p: p.write_bytes(npy_bytes(np.zeros((1, 3, 8, 8), np.float32))), "not an .npz"),
        (lambda p: write(p, images=np.zeros((1, 3, 8, 8), np.float32)), "expected one array named 'input'"),
        (lambda p: write(p, input=np.zeros((1, 3, 8, 8), np.float32), extra=np.zeros(1)), "expected one array"),
        (lambda p: write(p, input=np.zeros((1, 3, 8, 8), np.float64)), "expected float32"),
        (lambda p: write(p, input=np.zeros((1, 3, 8, 8), ">f4")), "expected float32"),
        (lambda p: write(p, input=np.zeros((3, 8, 8), np.float32)), "has shape (3, 8, 8)"),
        (lambda p: write(p, input=np.zeros((1, 3, 16, 16), np.float32)), "expected (N, 3, 8, 8)"),
        (lambda p: write(p, input=np.zeros((0, 3, 8, 8), np.float32)), "holds 0 inputs"),
        (lambda p: write(p, input=np.full((1, 3, 8, 8), np.nan, np.float32)), "NaN"),
        (lambda p: write(p, input=np.zeros((1, 3, 8, 8), np.float32), **{INPUTS_KIND: np.array("x")}), "one of"),
        (lambda p: write(p, input=np.array([object()], dtype=object)), "unreadable array"),
    ],
    ids=["pickle", "npy", "name", "extra", "float64", "big-endian", "rank", "shape", "empty", "nan", "kind", "objects"],
)
def test_an_inputs_file_that_does_not_fit_is_refused_in_one_line(tmp_path, make, fragment):
    path = tmp_path / "in.npz"
    if fragment == "unreadable array":  # np.savez would pickle objects: forge the member by hand
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("input.npy", pickled_npy())
    else:
        make(path)
    with pytest.raises(ArrayFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as caught:
        load_inputs(path, "input", 8)
    assert "\n" not in str(caught.value) and "in.npz" in str(caught.value)


def test_an_inputs_file_that_unpacks_too_large_is_refused_before_reading(tmp_path, monkeypatch):
    path = write(tmp_path / "big.npz", input=np.zeros((4, 3, 8, 8), np.float32))
    monkeypatch.setattr(side_by_side, "MAX_ARRAY_FILE_BYTES", 1024)
    with pytest.raises(ArrayFileError, match="unpack to more than"):
        load_inputs(path, "input", 8)
    with pytest.raises(ArrayFileError, match="no such inputs file"):
        load_inputs(tmp_path / "none.npz", "input", 8)


def test_output_file_names_come_from_the_artifacts_and_never_collide():
    names = output_file_names(["a/m.onnx", "b/m.onnx", "m.fp16.onnx", "ckpt.pth", ".hidden", "x y.onnx", "m.onnx"])
    assert names == ["m.onnx.npz", "m.onnx-2.npz", "m.fp16.onnx.npz", "ckpt.pth.npz", "hidden.npz", "x_y.onnx.npz",
                     "m.onnx-3.npz"]  # fmt: skip
