"""Predictor: every input kind, class names, batching, thread safety, preprocessing numbers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from acmix_deploy import Predictor
from acmix_deploy.labels import imagenet1k
from acmix_deploy.manifest import Preprocessing
from acmix_deploy.preprocess import ImageError, preprocess, resize_center_crop


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h, mode) in enumerate([(120, 90, "RGB"), (64, 64, "L"), (80, 100, "RGBA"), (70, 70, "P")]):
        arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(arr).convert(mode)
        path = root / f"img{i}.png"
        img.save(path)
        paths.append(path)
    return paths


def test_predict_accepts_every_input_kind(small_artifacts, image_files):
    predictor = Predictor.load(small_artifacts["onnx"])
    pil = Image.open(image_files[0])
    arr = np.asarray(pil.convert("RGB"))
    by_path = predictor.predict(str(image_files[0]), top_k=3)[0]
    by_pil = predictor.predict(pil, top_k=3)[0]
    by_array = predictor.predict(arr, top_k=3)[0]
    assert by_path == by_pil == by_array
    nchw = predictor.preprocess([image_files[0]])
    assert predictor.predict(nchw, top_k=3)[0] == by_path
    assert [p.index for p in by_path] == list(np.argsort(-predictor.infer(nchw)[0])[:3])
    assert abs(sum(p.probability for p in predictor.predict(arr, top_k=10)[0]) - 1.0) < 1e-5
    assert len(predictor.predict([str(p) for p in image_files] * 3, top_k=1)) == 12  # 12 > max batch 8
    assert by_path[0].label.startswith("class_")


def test_labels_file_and_bundled_imagenet(small_artifacts, tmp_path, image_files):
    (tmp_path / "labels.txt").write_text("\n".join(f"thing {i}" for i in range(10)))
    predictor = Predictor.load(small_artifacts["onnx"], labels=tmp_path / "labels.txt")
    assert predictor.predict(str(image_files[0]))[0][0].label.startswith("thing ")
    names = imagenet1k()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"


def test_torch_and_onnx_predict_the_same(small_artifacts, image_files):
    onnx_pred = Predictor.load(small_artifacts["onnx"]).predict([str(p) for p in image_files])
    torch_pred = Predictor.load(small_artifacts["checkpoint"], img_size=64).predict([str(p) for p in image_files])
    for a, b in zip(onnx_pred, torch_pred, strict=True):
        assert [p.index for p in a] == [p.index for p in b]
        assert all(abs(p.probability - q.probability) < 1e-5 for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("path_key", ["onnx", "checkpoint"])
def test_concurrent_calls_match_serial_results(small_artifacts, image_files, path_key):
    opts = {"img_size": 64} if path_key == "checkpoint" else {}
    predictor = Predictor.load(small_artifacts[path_key], **opts)
    inputs = [predictor.preprocess([p]) for p in image_files]
    serial = [predictor.infer(x) for x in inputs]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for k in range(25):
                i = (seed + k) % len(inputs)
                assert np.array_equal(predictor.infer(inputs[i]), serial[i])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_preprocessing_numbers():
    pre = Preprocessing(resize=8, crop=4, interpolation="bilinear")
    img = Image.new("RGB", (16, 8), (255, 0, 128))
    cropped = resize_center_crop(img, pre)
    assert cropped.size == (4, 4)  # shorter side 8 -> 8, longer 16 -> 16, centre 4x4
    x = preprocess([img], pre)
    assert x.shape == (1, 3, 4, 4) and x.dtype == np.float32
    assert np.allclose(x[0, :, 0, 0], [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225])
    gradient = Image.fromarray(np.tile(np.arange(10, dtype=np.uint8) * 20, (10, 1)))
    crop = np.asarray(resize_center_crop(gradient.convert("RGB"), Preprocessing(resize=10, crop=4)))
    assert list(crop[0, :, 0]) == [60, 80, 100, 120]  # torchvision's centre: round((10 - 4) / 2) = 3


def test_bad_images(tmp_path):
    pre = Preprocessing(resize=8, crop=4)
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageError, match="not a readable image"):
        preprocess([tmp_path / "junk.jpg"], pre)
    with pytest.raises(ImageError, match="no such image"):
        preprocess([tmp_path / "missing.png"], pre)
    with pytest.raises(ImageError, match="expected"):
        preprocess([np.zeros((4, 4, 5), np.uint8)], pre)
    with pytest.raises(ImageError, match="NaN"):
        preprocess(np.full((1, 3, 4, 4), np.nan, np.float32), pre)
    with pytest.raises(ImageError, match="no inputs"):
        preprocess([], pre)


def test_checkpoint_and_its_onnx_name_classes_alike(tmp_path):
    """The class names a checkpoint records reach the torch runner and the ONNX exported from it."""
    from acmix_deploy.datasets import write_digits_folder
    from acmix_deploy.exporters.onnx import export_onnx
    from acmix_deploy.labels import read_labels
    from tests.test_evaluate import demo_dir

    ckpt = demo_dir() / "digits_acmix_resnet26.pth"
    onnx_path = export_onnx(ckpt, tmp_path / "d.onnx", validate_batches=[1]).path  # no labels given
    folder = write_digits_folder(tmp_path / "digits", "test")
    images = sorted(folder.rglob("*.png"))[:3]
    with Predictor.load(ckpt) as torch_pred, Predictor.load(onnx_path) as onnx_pred:
        assert torch_pred.labels == onnx_pred.labels == read_labels(demo_dir() / "digits_labels.txt")
        by_torch = [top[0].label for top in torch_pred.predict(images, top_k=1)]
        by_onnx = [top[0].label for top in onnx_pred.predict(images, top_k=1)]
    assert by_torch == by_onnx and not any(label.startswith("class_") for label in by_torch)
