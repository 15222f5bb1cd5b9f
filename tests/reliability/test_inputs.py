"""Images and arrays: odd modes, corrupt files, decompression bombs, malformed arrays, oversized batches."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from acmix_deploy import Predictor
from acmix_deploy.manifest import Preprocessing
from acmix_deploy.preprocess import ImageError, preprocess

from .conftest import assert_clean_error, python_subprocess, run_cli_inproc

PRE = Preprocessing.evaluation(64)  # ACmix-ResNet: bilinear
SERVED = ["rgb_jpeg", "grayscale", "rgba", "palette", "palette_gif", "cmyk_jpeg", "png_16bit", "one_pixel"]
REFUSED = ["corrupt_jpeg", "truncated_jpeg", "bomb_20000", "over_pixel_limit", "non_image", "empty_file"]


@pytest.fixture(scope="module")
def onnx_predictor(small_artifacts):
    with Predictor.load(small_artifacts["onnx"], threads=1) as predictor:
        yield predictor


@pytest.mark.parametrize("name", SERVED)
def test_odd_but_valid_images_are_served(image_corpus, onnx_predictor, name):
    path, _ = image_corpus[name]
    x = preprocess([str(path)], PRE)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and np.isfinite(x).all()
    preds = onnx_predictor.predict(str(path), top_k=2)
    assert len(preds) == 1 and len(preds[0]) == 2


def test_sixteen_bit_png_keeps_its_range(image_corpus):
    from PIL import Image

    from acmix_deploy.preprocess import open_image, to_rgb

    img = open_image(image_corpus["png_16bit"][0])
    assert img.mode.startswith("I")
    rgb = np.asarray(to_rgb(img))
    raw = np.asarray(img, dtype=np.float64)
    assert abs(rgb[..., 0].mean() - raw.mean() / 65535 * 255) < 1.0  # not clipped to 255 by a naive convert
    assert Image.fromarray(rgb).mode == "RGB"


def test_cli_predict_serves_every_odd_image_in_one_call(image_corpus, small_artifacts):
    paths = [str(image_corpus[name][0]) for name in SERVED]
    proc = run_cli_inproc("predict", str(small_artifacts["onnx"]), *paths, "--json", "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert [row["image"] for row in json.loads(proc.stdout)] == paths


@pytest.mark.parametrize("name", REFUSED)
def test_unreadable_images_are_refused(image_corpus, onnx_predictor, name):
    path, fragment = image_corpus[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning for the 144 Mpx header
        with pytest.raises(ImageError, match=fragment):
            preprocess([str(path)], PRE)
        with pytest.raises(ImageError, match=fragment):
            onnx_predictor.predict([str(image_corpus["rgb_jpeg"][0]), str(path)])


@pytest.mark.parametrize("name", REFUSED)
def test_cli_predict_refuses_unreadable_images(image_corpus, small_artifacts, name):
    path, fragment = image_corpus[name]
    proc = run_cli_inproc("predict", str(small_artifacts["onnx"]), str(path))
    assert_clean_error(proc, 1, fragment)


MEMORY_PROBE = """
import json, resource, sys, time, warnings
from PIL import Image
from acmix_deploy.manifest import Preprocessing
from acmix_deploy.preprocess import ImageError, preprocess
pre = Preprocessing.evaluation(64)  # ACmix-ResNet: bilinear
warnings.simplefilter("ignore")
out = {}
for name, path in json.loads(sys.argv[1]):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        preprocess([path], pre)
        outcome = "served"
    except ImageError as exc:
        outcome = "refused: " + str(exc)
    out[name] = {"outcome": outcome, "seconds": time.perf_counter() - t0,
                 "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def memory_probe(image_corpus):
    """Peak-RSS growth and time per file, measured in a fresh interpreter (ru_maxrss only grows)."""
    files = [
        ["bomb_20000", str(image_corpus["bomb_20000"][0])],
        ["over_pixel_limit", str(image_corpus["over_pixel_limit"][0])],
    ]
    proc = python_subprocess(MEMORY_PROBE.replace("sys.argv[1]", repr(json.dumps(files))))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["bomb_20000", "over_pixel_limit"])
def test_decompression_bombs_are_refused_quickly_without_allocating(memory_probe, name):
    result = memory_probe[name]
    assert result["outcome"].startswith("refused"), result
    assert result["seconds"] < 1.0, result
    assert result["rss_growth_mb"] < 50, result  # decoding 20000x20000 RGB would need 1.2 GB


def test_extreme_aspect_ratio_does_not_blow_up_memory(monkeypatch, tmp_path):
    """Spy on PIL's resize and stop it before it allocates: the intermediate must stay near the crop size."""
    from PIL import Image

    Image.new("RGB", (8000, 1), (90, 90, 90)).save(tmp_path / "strip.png")  # 8000 px, ~70 bytes on disk
    requested: list[tuple[int, int]] = []

    class Stop(Exception):
        pass

    def spy(self, size, *args, **kwargs):
        requested.append(tuple(size))
        raise Stop

    monkeypatch.setattr(Image.Image, "resize", spy)
    with pytest.raises((Stop, ImageError)):
        preprocess([str(tmp_path / "strip.png")], PRE)
    assert all(w * h <= 16 * PRE.resize**2 for w, h in requested), requested


def test_unconvertible_pil_mode_is_an_image_error():
    from PIL import Image

    with pytest.raises(ImageError):
        preprocess([Image.new("La", (8, 8))], PRE)


# -- arrays --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((64, 64), np.float32), "expected an HWC uint8 image or a CHW float array"),
        (np.zeros((1, 1, 3, 64, 64), np.float32), "expected an HWC uint8 image or a CHW float array"),
        (np.zeros(7, np.float32), "expected an HWC uint8 image"),
        (np.zeros((2, 4, 64, 64), np.float32), r"expected an array of shape \(N, 3, 64, 64\)"),
        (np.zeros((2, 3, 32, 32), np.float32), r"expected an array of shape \(N, 3, 64, 64\)"),
        (np.zeros((2, 3, 64, 64), np.int64), "expected a float array"),
        (np.zeros((2, 3, 64, 64), np.uint8), "expected a float array"),
        (np.zeros((64, 64, 3), np.float32), "expected an HWC uint8 image"),
        (np.zeros((64, 64, 5), np.uint8), "expected an HWC uint8 image"),
        (np.zeros((3, 64, 64), np.int32), "expected an HWC uint8 image"),
        (np.full((1, 3, 64, 64), np.nan, np.float32), "NaN or Inf"),
        (np.full((1, 3, 64, 64), np.inf, np.float64), "NaN or Inf"),
        (np.zeros((2, 3, 64, 64), np.complex64), "expected a float array"),
    ],
    ids=lambda v: f"{v.shape}-{v.dtype}" if isinstance(v, np.ndarray) else None,
)
def test_malformed_arrays_are_refused(onnx_predictor, array, fragment):
    with pytest.raises(ImageError, match=fragment):
        onnx_predictor.predict(array)
    with pytest.raises(ImageError, match=fragment):
        preprocess(array, PRE)


@pytest.mark.parametrize(
    "array",
    [np.zeros((2, 3, 64, 64), np.float64), np.zeros((3, 64, 64), np.float16), np.zeros((40, 30, 1), np.uint8)],
    ids=["float64-batch", "float16-chw", "hw1-uint8"],
)
def test_convertible_arrays_are_served(onnx_predictor, array):
    assert len(onnx_predictor.predict(array)) == (2 if array.ndim == 4 else 1)


def test_runner_refuses_malformed_batches(onnx_predictor):
    from acmix_deploy.runtimes.base import RunnerError

    for bad in (np.zeros((3, 64, 64), np.float32), np.zeros((1, 3, 64, 64), np.int8), [[1.0]]):
        with pytest.raises(RunnerError, match="expected a"):
            onnx_predictor.infer(bad)


@pytest.mark.parametrize("key", ["onnx", "checkpoint"])
def test_batch_larger_than_the_artifact_allows_is_split(small_artifacts, key):
    options = {"img_size": 64, "max_batch": 8} if key == "checkpoint" else {"threads": 1}
    with Predictor.load(small_artifacts[key], **options) as predictor:
        assert predictor.runner.batch_limits[1] == 8
        x = np.random.default_rng(0).standard_normal((19, 3, 64, 64)).astype(np.float32)
        whole = predictor.infer(x)
        rows = np.concatenate([predictor.infer(x[i : i + 1]) for i in range(len(x))])
        assert whole.shape == (19, 10)
        np.testing.assert_allclose(whole, rows, rtol=0, atol=1e-5)
        chunks = np.concatenate([predictor.infer(x[i : i + 8]) for i in range(0, 19, 8)])
        assert np.array_equal(whole, chunks)  # split into the artifact's batch limit, exactly
        images = [(np.random.default_rng(i).random((50, 60, 3)) * 255).astype(np.uint8) for i in range(19)]
        assert [p[0].index for p in predictor.predict(images)] == [predictor.predict(im)[0][0].index for im in images]
        assert predictor.infer(x[:0]).shape == (0, 10)
