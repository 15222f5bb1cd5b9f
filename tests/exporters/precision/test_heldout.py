"""Variants judged on images they were not calibrated on (exporters/precision/common.py, int8_static.py).

On the shipped digits ACmix-ResNet-26: a healthy int8 variant passes INT8_TOLERANCE on held-out
images (a split of the calibration folder, or the eval folder), one calibrated on wrecked data
fails in one line and writes nothing; the split never shares an image with calibration.
"""

from __future__ import annotations

import numpy as np
import pytest

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.precision import (
    INT8_TOLERANCE,
    PrecisionError,
    split_calibration,
    to_fp16,
    to_int8,
)
from acmix_deploy.exporters.precision.common import HELDOUT_IMAGES, split_holdout
from acmix_deploy.exporters.validate import ParityError
from acmix_deploy.imagefolder import images_under
from acmix_deploy.manifest import read_manifest, sidecar_path
from acmix_deploy.preprocess import preprocess


def test_split_is_disjoint_seeded_and_bounded():
    kept, held = split_holdout(10)
    assert len(held) == 2 and len(kept) == 8 and not set(kept) & set(held)
    assert sorted([*kept, *held]) == list(range(10))
    assert np.array_equal(split_holdout(10)[1], held)  # seeded: the same images every run
    assert len(split_holdout(5000)[1]) == HELDOUT_IMAGES
    with pytest.raises(PrecisionError, match=r"at least 2.*export --eval-data, sensitivity --data"):
        split_holdout(1)


def test_calibration_never_sees_the_held_out_images(digits):
    manifest = read_manifest(digits["onnx"])
    x = preprocess(sorted(images_under(digits["train"]))[:20], manifest.preprocessing)
    calib, held = split_calibration(x, manifest, samples=256)
    assert len(calib) == 16 and len(held.images) == 4 and held.source == "calibration split"
    flat = {row.tobytes() for row in calib}
    assert not any(row.tobytes() in flat for row in held.images)
    calib, held = split_calibration(x, manifest, samples=8, eval_dir=digits["test"])
    assert len(calib) == 8 and held.source == "eval_dir" and held.of == 359 and len(held.images) == HELDOUT_IMAGES
    with pytest.raises(PrecisionError, match="is the calibration folder"):
        split_calibration(digits["train"], manifest, samples=8, eval_dir=digits["train"])


def test_healthy_int8_passes_on_a_held_out_split_and_records_it(digits, tmp_path):
    dst = tmp_path / "q.onnx"
    report = to_int8(digits["onnx"], dst, calibration=digits["train"], samples=64, sensitivity=False)
    heldout = read_manifest(dst).precision_report["heldout"]
    print(f"\nheld-out: {report.describe()}")
    assert heldout["passed"] and heldout["held_out"] == {
        "source": "calibration split", "where": str(digits["train"]), "images": 256, "of": 1438,
    }  # fmt: skip
    assert heldout["tolerance"] == {"rtol": 0.5, "min_cosine": 0.8, "min_top1_agreement": 0.95}
    assert heldout["top1_agreement"] >= INT8_TOLERANCE.min_top1_agreement and heldout["cosine_min"] >= 0.8
    assert report.parity == heldout and "held out of calibration" in report.describe()
    assert report.details["calibration_images_parity"]["inputs"] == "the 64 calibration images"


def test_int8_from_wrecked_calibration_fails_in_one_line_and_writes_nothing(digits, tmp_path):
    """Calibrated on images scaled down 20x: every activation range is too narrow, real images clip."""
    manifest = read_manifest(digits["onnx"])
    wrecked = 0.05 * preprocess(sorted(images_under(digits["train"]))[:16], manifest.preprocessing)
    dst = tmp_path / "q.onnx"
    with pytest.raises(ParityError, match="out of tolerance vs fp32 on 256 of 359 held-out images") as failed:
        to_int8(digits["onnx"], dst, calibration=wrecked, eval_dir=digits["test"], sensitivity=False)
    message = str(failed.value)
    assert isinstance(failed.value, AcmixDeployError) and "\n" not in message and "nothing written" in message
    assert not failed.value.report.passed and failed.value.report.top1_agreement < 0.95
    assert not dst.exists() and not sidecar_path(dst).exists() and not list(tmp_path.iterdir())


def test_fp16_is_checked_on_real_images_too(digits, tmp_path):
    report = to_fp16(digits["onnx"], tmp_path / "h.onnx", check_images=digits["test"], numpy_check=False)
    held = read_manifest(tmp_path / "h.onnx").precision_report["heldout"]
    assert held["passed"] and held["held_out"]["source"] == "eval_dir"
    assert held["held_out"]["images"] == HELDOUT_IMAGES and held["top1_agreement"] == 1.0
    assert "held-out images" in report.describe()
