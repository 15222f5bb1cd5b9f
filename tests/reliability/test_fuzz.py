"""Property-based fuzzing: no input gives anything but a result or one of our own errors (warnings allowed)."""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from acmix_deploy import read_checkpoint
from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.manifest import Manifest, Preprocessing
from acmix_deploy.preprocess import preprocess

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)
PRE = Preprocessing.evaluation(64)  # ACmix-ResNet: bilinear


def ours_or_result(fn, *args):
    """Call fn; our errors are fine, anything else propagates (the property fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args)
        except AcmixDeployError:
            return None


def _read_bytes(data: bytes, suffix: str = ".pth") -> None:
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        os.write(fd, data)
        os.close(fd)
        ours_or_result(read_checkpoint, name)
    finally:
        os.unlink(name)


# -- checkpoints ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    import torch

    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("fuzz_valid")
    model = acmix_deploy.build_model("acmix_resnet26", width=16, num_classes=4, layers=(1, 1, 1, 1))
    files = {
        "zip": save_checkpoint(model, root / "m.pth", layout="official").read_bytes(),
        "safetensors": save_checkpoint(model, root / "m.safetensors", layout="safetensors").read_bytes(),
    }
    torch.save(model.state_dict(), root / "legacy.pth", _use_new_zipfile_serialization=False)
    files["legacy"] = (root / "legacy.pth").read_bytes()
    return files


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=512),
        st.binary(max_size=256).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=256).map(lambda b: b"\x80\x02" + b),
        st.binary(max_size=256).map(lambda b: struct.pack("<Q", 16) + b"{" + b),
    )
)
def test_read_checkpoint_random_bytes(data):
    _read_bytes(data)


@settings(FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["zip", "legacy", "safetensors"]), fraction=st.floats(0, 1, exclude_max=True))
def test_read_checkpoint_truncated_prefixes(valid_files, kind, fraction):
    data = valid_files[kind]
    _read_bytes(data[: int(len(data) * fraction)], ".safetensors" if kind == "safetensors" else ".pth")


@settings(FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["zip", "legacy"]), data=st.data())
def test_read_checkpoint_flipped_bytes(valid_files, kind, data):
    blob = bytearray(valid_files[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    _read_bytes(bytes(blob))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
ST_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8", "x"]) | JSON,
        "shape": st.lists(st.integers(-3, 6), max_size=4) | JSON,
        "data_offsets": st.lists(st.integers(-4, 64), min_size=0, max_size=3) | JSON,
    },
)
ST_HEADER = st.dictionaries(
    st.sampled_from(["conv1.weight", "fc.weight", "a", "__metadata__"]) | st.text(max_size=6),
    ST_ENTRY | JSON,
    max_size=4,
)


@FUZZ
@given(header=ST_HEADER, body=st.binary(max_size=128))
def test_read_checkpoint_random_safetensors_headers(header, body):
    head = json.dumps(header).encode()
    _read_bytes(struct.pack("<Q", len(head)) + head + body, ".safetensors")


# -- manifests -----------------------------------------------------------------------------


def _valid_manifest() -> dict:
    return Manifest(
        family="acmix_resnet",
        hparams={"width": 16},
        img_size=64,
        num_classes=10,
        preprocessing=PRE,
    ).to_dict()


@FUZZ
@given(JSON)
def test_manifest_from_dict_arbitrary(data):
    ours_or_result(Manifest.from_dict, data)


@FUZZ
@given(st.text(max_size=200) | JSON.map(json.dumps))
def test_manifest_from_json_arbitrary_text(text):
    ours_or_result(Manifest.from_json, text)


FIELDS = [*_valid_manifest(), "preprocessing.resize", "preprocessing.mean", "preprocessing.std", "preprocessing.crop"]


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON)
def test_manifest_one_field_replaced(field, value):
    data = _valid_manifest()
    if "." in field:
        data["preprocessing"][field.split(".")[1]] = value
    else:
        data[field] = value
    data["format_version"] = 1 if field != "format_version" else value
    ours_or_result(Manifest.from_dict, data)


@pytest.mark.parametrize(
    "header",
    [
        {"__metadata__": [None]},
        {"__metadata__": "x"},
        {"w": {"dtype": "F32", "shape": [-1, -1], "data_offsets": [0, 4]}},
        {"w": {"dtype": "F32", "shape": [0, -5], "data_offsets": [0, 0]}},
    ],
    ids=["metadata-list", "metadata-str", "shape-minus1x2", "shape-negative-empty"],
)
def test_malformed_safetensors_entries_are_checkpoint_errors(tmp_path, header):
    from acmix_deploy.errors import CheckpointError

    head = json.dumps(header).encode()
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"\x00" * 4)
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "x.safetensors")


@pytest.mark.parametrize("value", ["64", None, [64], 64.5])
def test_manifest_with_non_integer_img_size_is_a_manifest_error(value):
    from acmix_deploy.manifest import ManifestError

    data = _valid_manifest()
    data["img_size"] = value
    with pytest.raises(ManifestError):
        Manifest.from_dict(data)


def test_manifest_from_deeply_nested_json():
    from acmix_deploy.manifest import ManifestError

    with pytest.raises(ManifestError):
        Manifest.from_json("[" * 100_000 + "]" * 100_000)


# -- preprocessing -------------------------------------------------------------------------

DTYPES = st.sampled_from(
    [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
)


@FUZZ
@given(
    hnp.arrays(
        DTYPES,
        st.one_of(
            hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5),
            st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([1, 3, 4])),
            st.tuples(st.integers(0, 2), st.just(3), st.sampled_from([64, 63]), st.sampled_from([64, 1])),
        ),
    )
)
def test_preprocess_random_arrays(array):
    out = ours_or_result(preprocess, array, PRE)
    if out is not None:
        assert out.dtype == np.float32 and out.ndim == 4 and out.shape[1:] == (3, 64, 64)


@FUZZ
@given(st.lists(st.one_of(st.integers(), st.text(max_size=4), st.none(), st.floats()), max_size=3))
def test_preprocess_random_python_objects(items):
    ours_or_result(preprocess, items, PRE)


def _write_and_preprocess(data: bytes, suffix: str) -> None:
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        os.write(fd, data)
        os.close(fd)
        out = ours_or_result(preprocess, [name], PRE)
        assert out is None or (out.shape == (1, 3, 64, 64) and np.isfinite(out).all())
    finally:
        os.unlink(name)


@FUZZ
@given(st.binary(max_size=512))
def test_preprocess_random_bytes_as_image_file(data):
    _write_and_preprocess(data, ".jpg")


@pytest.fixture(scope="module")
def valid_images():
    from PIL import Image

    rng = np.random.default_rng(3)
    img = Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8))
    out = {}
    for fmt, mode in [("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB")]:
        buf = io.BytesIO()
        img.convert(mode).save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


@settings(FUZZ, max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]), data=st.data())
def test_preprocess_mutated_image_files(valid_images, fmt, data):
    blob = bytearray(valid_images[fmt])
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(blob) // 2, len(blob)))
    _write_and_preprocess(bytes(blob[:cut]), "." + fmt.lower())


def test_fuzz_helpers_reject_foreign_exceptions():
    """The property helper must not swallow foreign exception types."""
    with pytest.raises(ZeroDivisionError):
        ours_or_result(lambda: 1 / 0)
