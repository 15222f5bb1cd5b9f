"""Image folders and image files built to mislead: link loops, links across classes, float TIFFs."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from acmix_deploy.imagefolder import images_under, index_image_folder
from acmix_deploy.manifest import Preprocessing
from acmix_deploy.preprocess import ImageError, preprocess_one, to_rgb


def _tree(root) -> None:
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / name / "1.png")


def _index_in_child(root, timeout: float = 60.0) -> list[str]:
    """Index ``root`` in a child process with a deadline: before the fix two loops made the walk exponential."""
    code = (
        "import sys\nfrom acmix_deploy.imagefolder import index_image_folder\n"
        "index = index_image_folder(sys.argv[1])\n"
        "print('\\n'.join(f'{index.classes[i]} {p.relative_to(index.root)}' for p, i in index.samples))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_self_link_does_not_inflate_the_count(tmp_path):
    _tree(tmp_path)
    os.symlink("..", tmp_path / "a" / "up")  # a/up -> root: a's walk would see a again, and b
    assert _index_in_child(tmp_path) == ["a a/1.png", "b b/1.png"]


def test_two_loops_end_quickly(tmp_path):
    _tree(tmp_path)
    (tmp_path / "a" / "sub").mkdir()
    os.symlink("..", tmp_path / "a" / "sub" / "up")
    os.symlink("../..", tmp_path / "a" / "sub" / "top")
    os.symlink(".", tmp_path / "b" / "self")
    assert _index_in_child(tmp_path, timeout=30) == ["a a/1.png", "b b/1.png"]


def test_linked_folders_are_still_followed_once(tmp_path):
    root = tmp_path / "root"
    _tree(root)
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    Image.new("RGB", (8, 8)).save(extra / "2.png")
    os.symlink(extra, root / "a" / "more")
    os.symlink(extra, root / "a" / "again")  # the same real folder twice: read once
    index = index_image_folder(root)
    names = sorted(str(p.relative_to(root)) for p, i in index.samples if i == 0)
    assert len(names) == 2 and names[0] == "a/1.png" and len(index.samples) == 3
    assert len(images_under(root / "a")) == 2


def _pre() -> Preprocessing:
    return Preprocessing(resize=8, crop=8)


def test_float_tiff_in_0_1_is_scaled_not_black(tmp_path):
    Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F").save(tmp_path / "half.tif")
    with Image.open(tmp_path / "half.tif") as img:
        rgb = np.asarray(to_rgb(img))
    assert rgb.min() == rgb.max() == 128  # was 0: PIL reads floats as 0..255 and rounds 0.5 down
    x = preprocess_one(tmp_path / "half.tif", _pre())
    assert x.shape == (3, 8, 8) and np.isfinite(x).all()


def test_float_tiff_out_of_range_is_clipped_with_a_warning(tmp_path):
    Image.fromarray(np.linspace(-5, 400, 64, dtype=np.float32).reshape(8, 8), mode="F").save(tmp_path / "wide.tif")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Image.open(tmp_path / "wide.tif") as img:
            rgb = np.asarray(to_rgb(img))
    assert rgb.min() == 0 and rgb.max() == 255 and any("clipped" in str(w.message) for w in caught)


def test_float_tiff_with_nan_is_an_image_error(tmp_path):
    data = np.zeros((8, 8), np.float32)
    data[2, 2] = np.nan
    Image.fromarray(data, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="NaN"):
        preprocess_one(tmp_path / "nan.tif", _pre())
