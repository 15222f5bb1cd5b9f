"""What artifacts of one comparison share: inputs files (``verify --load-inputs``: untrusted data, refused in
one line unless they fit) and the placement of class folders (``evaluate`` with several artifacts)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

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


NAMES = ["zero point", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_side_by_side_evaluation_places_folders_as_evaluate_does(small_artifacts, tmp_path):
    """A labelled export lends its names to an unlabelled one: folders named in another case, or with ``_`` for
    a space, hold the same class for both, the class evaluate gives the labelled export alone (the unlabelled
    one would otherwise take sorted folder order: 'EIGHT' as class 0)."""
    import json

    from PIL import Image

    from acmix_deploy.evaluate import evaluate
    from acmix_deploy.exporters.onnx import export_onnx
    from tests.test_cli import run_cli

    named = tmp_path / "named.onnx"
    export_onnx(small_artifacts["checkpoint"], named, img_size=64, validate_batches=[1], labels=NAMES)
    data = tmp_path / "val"
    rng = np.random.default_rng(0)
    folders = {}
    for index, name in enumerate(NAMES):
        folder = name.replace(" ", "_").upper() if index % 2 == 0 else name.title()  # 'ZERO_POINT', 'One', ...
        folders[folder] = index
        (data / folder).mkdir(parents=True)
        for j in range(2):
            Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(data / folder / f"{j}.png")
    alone = evaluate(named, data, top_k=(1,))
    truth = dict(zip(alone.paths, alone.labels, strict=True))
    assert {path: folders[Path(path).parent.name] for path in truth} == truth  # evaluate's own placement

    plain = small_artifacts["onnx"]  # records no class names
    assert side_by_side.shared_class_names([plain, named], data) == NAMES
    for report in (evaluate(plain, data, top_k=(1,), shared_labels=NAMES), alone):
        assert dict(zip(report.paths, report.labels, strict=True)) == truth and report.classes == NAMES

    proc = run_cli("evaluate", str(plain), str(named), "--data", str(data), "--top-k", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    placed = [{c["folder"]: c["index"] for c in report["per_class"]} for report in json.loads(proc.stdout)]
    assert placed == [folders, folders]


def test_recorded_precision_takes_the_runners_manifest_whatever_the_suffix(small_artifacts, tmp_path):
    """The manifest a runner read is used as given: an artifact run with a forced backend (no known suffix) keeps
    its record instead of failing on the suffix; a checkpoint's runner manifest records no precision, so none."""
    from acmix_deploy.manifest import read_manifest
    from acmix_deploy.side_by_side import recorded_precision

    manifest = read_manifest(small_artifacts["onnx"]).replace(precision="int8")
    assert recorded_precision(tmp_path / "model.bin.v2", manifest).precision == "int8"
    assert recorded_precision(small_artifacts["checkpoint"], manifest).precision == ""
    assert recorded_precision(small_artifacts["onnx"]).precision == "fp32"
