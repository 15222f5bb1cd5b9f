"""What every precision conversion shares (exporters/precision/common.py): the source and the variant's manifest."""

from __future__ import annotations

import json

import onnx
import pytest

from acmix_deploy.exporters.graph import embed_manifest
from acmix_deploy.exporters.precision import PrecisionError, to_int8_dynamic
from acmix_deploy.exporters.precision.common import ProvenVariant, load_fp32_source, variant_manifest
from acmix_deploy.manifest import BatchSpec, read_manifest, sidecar_path


def _with_manifest(src, dst, change):
    """A copy of the fp32 ONNX ``src`` whose manifest (embedded and sidecar) is ``change(manifest dict)``."""
    data = read_manifest(src).to_dict()
    change(data)
    model = onnx.load(str(src))
    embed_manifest(model, json.dumps(data))  # written as is: no validation, as a newer release might write it
    onnx.save(model, str(dst))
    sidecar_path(dst).write_text(json.dumps(data))
    return dst


def test_source_is_read_through_the_typed_manifest(small_artifacts):
    source = load_fp32_source(small_artifacts["onnx"])
    assert source.manifest == read_manifest(small_artifacts["onnx"])
    assert isinstance(source.manifest.batch, BatchSpec) and source.manifest.batch.dynamic
    assert source.run(_zeros(2, source.manifest.img_size)).shape == (2, 10)


def _zeros(n, size):
    import numpy as np

    return np.zeros((n, 3, size, size), np.float32)


def test_fixed_batch_and_corrupt_sources_are_refused(small_artifacts, tmp_path):
    fixed = _with_manifest(
        small_artifacts["onnx"], tmp_path / "fixed.onnx", lambda d: d.update(batch=BatchSpec.fixed(4).to_dict())
    )
    with pytest.raises(PrecisionError, match=r"fixed-batch export \(4\)"):
        load_fp32_source(fixed)
    newer = _with_manifest(small_artifacts["onnx"], tmp_path / "v9.onnx", lambda d: d.update(format_version=9))
    with pytest.raises(PrecisionError, match=r"not an acmix-deploy ONNX: .*format_version 9") as info:
        load_fp32_source(newer)
    assert "\n" not in str(info.value) and str(info.value).count(str(newer)) == 1


def test_variant_manifest_is_the_source_restated(small_artifacts):
    source = read_manifest(small_artifacts["onnx"])
    variant = ProvenVariant(
        onnx.ModelProto(), "int8", {"passed": True}, run=lambda x: x, int8_target="cpu", calibration={"samples": 3}
    )
    made = variant_manifest(source, variant, {"precision": "int8"})
    assert source.precision == "fp32" and source.precision_report is None  # the source is left as it was
    assert made.precision == "int8" and made.int8_target == "cpu" and made.calibration == {"samples": 3}
    assert made.precision_report == {"precision": "int8"}
    assert made.parity == {**source.parity, "onnxruntime_int8_vs_fp32_onnx": {"passed": True}}
    assert made.replace(precision="fp32", parity=source.parity, precision_report=None, int8_target=None,
                        calibration=None, created=source.created) == source  # fmt: skip


def test_keys_of_a_newer_writer_survive_conversion(small_artifacts, tmp_path):
    """A source manifest key this release does not know is carried into the variant, not dropped."""
    src = _with_manifest(
        small_artifacts["onnx"], tmp_path / "newer.onnx", lambda d: d.update(future_record={"kept": [1, 2]})
    )
    dst = tmp_path / "dyn.onnx"
    to_int8_dynamic(src, dst)
    written = read_manifest(dst)
    assert written.extra == {"future_record": {"kept": [1, 2]}}
    assert written.int8_target == "cpu-dynamic" and written.calibration is None
    assert written.precision_report["details"]["int8_target"] == "cpu-dynamic"
    assert json.loads(sidecar_path(dst).read_text())["future_record"] == {"kept": [1, 2]}
