"""Static int8 (exporters/precision/int8_static.py): its options object and what it records."""

from __future__ import annotations

import pytest

from acmix_deploy.exporters.precision import MEASURE_ONLY, Int8Options, PrecisionError, quantize_int8, to_int8
from acmix_deploy.manifest import read_manifest
from acmix_deploy.parity import Tolerance, random_inputs


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"target": "gpu"}, "unknown int8 target 'gpu'"),
        ({"method": "magic"}, "unknown calibration method 'magic'"),
        ({"cpu_format": "qlinear"}, "unknown cpu_format 'qlinear'"),
        ({"samples": 0}, "samples must be >= 1"),
        ({"sensitivity_budget": -1}, "sensitivity_budget must be >= 0"),
        ({"tolerance": Tolerance(min_top1_agreement=1.5)}, "min_top1_agreement must be within 0..1"),
    ],
)
def test_options_refuse_bad_knobs_before_any_work(knobs, message, small_artifacts, tmp_path):
    with pytest.raises(PrecisionError, match=message):
        Int8Options(**knobs)
    with pytest.raises(PrecisionError, match=message):  # the keyword API checks the same, first
        to_int8(small_artifacts["onnx"], tmp_path / "q.onnx", calibration=random_inputs(2, 64, seed=0), **knobs)
    assert not list(tmp_path.iterdir())


def test_options_are_plain_values():
    options = Int8Options(exclude_nodes=["a", "b"])
    assert options.exclude_nodes == ("a", "b") and hash(options) == hash(Int8Options(exclude_nodes=("a", "b")))
    assert Int8Options() == Int8Options(target="cpu", method="minmax", samples=256, sensitivity_budget=5)


def test_options_call_records_typed_int8_fields(small_artifacts, tmp_path):
    calib = random_inputs(16, 64, seed=3)
    dst = tmp_path / "q.onnx"
    options = Int8Options(target="tensorrt", samples=16, sensitivity=True, sensitivity_budget=1, tolerance=MEASURE_ONLY)
    report = quantize_int8(small_artifacts["onnx"], dst, calib, options)
    manifest = read_manifest(dst)
    assert manifest.precision == "int8" and manifest.int8_target == "tensorrt"
    held = {"source": "calibration split", "where": "array", "images": 3, "of": 16}  # 20% never calibrated on
    assert manifest.calibration == {"method": "minmax", "samples": 13, "held_out": held, "source": "array"}
    assert manifest.precision_report["details"] == report.details and manifest.extra == {}
    assert manifest.batch == read_manifest(small_artifacts["onnx"]).batch
    recorded = manifest.parity["onnxruntime_int8_vs_fp32_onnx"]
    assert recorded["inputs"] == "3 of 16 images of the calibration source array, held out of calibration"
    assert recorded["held_out"] == held and manifest.precision_report["heldout"] == recorded
    search = report.details["sensitivity"]
    tried = [k for k in search["nmse"] if k != "none"]
    assert search["ran"] and len(tried) == 1 and tried[0] == next(iter(search["groups"]))  # budget 1: one group
    assert len(report.details["quantizations"]) == 2  # the baseline and that one group
