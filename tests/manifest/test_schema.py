"""The typed manifest: lossless round trips, one batch default, unknown keys kept, clear refusals."""

from __future__ import annotations

import json

import pytest

from acmix_deploy.manifest import BatchSpec, EngineSidecar, Manifest, ManifestError, Preprocessing


def _manifest(**changes) -> Manifest:
    base = Manifest(
        family="acmix_resnet",
        hparams={"layers": (1, 2, 4, 1), "k_att": 7, "head": 4, "k_conv": 3, "num_classes": 10, "width": 16},
        img_size=64,
        num_classes=10,
        preprocessing=Preprocessing.evaluation(64),
        labels=[str(i) for i in range(10)],
    )
    return base.replace(**changes)


def test_round_trip_is_lossless_for_every_record():
    m = _manifest(
        precision="int8",
        batch=BatchSpec(min=1, max=8, opt=4),
        precision_report={"parity": {"cosine": 0.99}, "speed": {"speedup_vs_fp32": 0.8}},
        int8_target="tensorrt",
        calibration={"folder": "calib", "samples": 256, "method": "minmax"},
        parity={"onnxruntime_vs_torch_reference": {"passed": True}},
    )
    assert Manifest.from_dict(m.to_dict()) == m
    assert Manifest.from_json(m.to_json()) == m
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))).to_dict() == m.to_dict()


def test_records_written_by_precision_are_typed_fields_not_dropped():
    data = _manifest().to_dict()
    data.update(precision_report={"a": 1}, int8_target="cpu", calibration={"samples": 8})
    m = Manifest.from_dict(data)
    assert (m.precision_report, m.int8_target, m.calibration) == ({"a": 1}, "cpu", {"samples": 8})
    assert m.extra == {}


def test_unknown_keys_from_a_newer_writer_are_kept_and_written_back():
    data = {**_manifest().to_dict(), "future_field": {"x": [1, 2]}}
    m = Manifest.from_dict(data)
    assert m.extra == {"future_field": {"x": [1, 2]}}
    assert m.to_dict() == data


def test_fp32_manifest_json_has_no_empty_precision_records():
    data = _manifest().to_dict()
    assert not {"precision_report", "int8_target", "calibration", "extra"} & set(data)


def test_batch_has_one_default_dynamic():
    data = _manifest().to_dict()
    del data["batch"]
    assert Manifest.from_dict(data).batch == BatchSpec(dynamic=True, min=1, max=32)
    data["batch"] = {"min": 2, "max": 4}
    assert Manifest.from_dict(data).batch.dynamic is True
    assert _manifest(batch=BatchSpec.fixed(3)).input_shape == (3, 3, 64, 64)
    assert _manifest().input_shape == ("batch", 3, 64, 64)


@pytest.mark.parametrize(
    "batch",
    [
        {"max": 0},
        {"max": -3},
        {"min": 4, "max": 2},
        {"max": 2.5},
        {"dynamic": "yes"},
        {"dynamic": False, "min": 1},
        {"max": 8, "opt": 9},
        {"size": 3},
        [1, 8],
        "dynamic",
    ],
)
def test_bad_batch_is_refused_in_one_line(batch):
    data = {**_manifest().to_dict(), "batch": batch}
    with pytest.raises(ManifestError, match="batch") as info:
        Manifest.from_dict(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format_version": 2}, "format_version"),
        ({"img_size": "64"}, "integers"),
        ({"num_classes": 0}, "non-positive"),
        ({"hparams": [1, 2]}, "hparams"),
        ({"preprocessing": "bilinear"}, "preprocessing"),
        ({"preprocessing": {"resize": 73, "crop": 64, "gamma": 2}}, "preprocessing"),
        ({"labels": ["a"]}, "labels"),
    ],
)
def test_malformed_manifests_raise_manifest_error(change, match):
    with pytest.raises(ManifestError, match=match):
        Manifest.from_dict({**_manifest().to_dict(), **change})


def test_missing_required_field_is_named():
    data = _manifest().to_dict()
    del data["num_classes"]
    with pytest.raises(ManifestError, match="missing num_classes"):
        Manifest.from_dict(data)


def test_manifest_is_immutable_and_replace_validates():
    m = _manifest()
    with pytest.raises(AttributeError):
        m.precision = "fp16"  # type: ignore[misc]
    with pytest.raises(ManifestError):
        m.replace(num_classes=-1)
    assert m.replace(precision="mixed").precision == "mixed" and m.precision == "fp32"


def _sidecar(**changes) -> dict:
    data = EngineSidecar(
        manifest=_manifest(batch=BatchSpec(max=32)),
        precision="fp16",
        profile={"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]},
        tensorrt_version="10.16.1",
        gpu_name="NVIDIA H200",
        compute_capability="9.0",
    ).to_dict()
    return {**data, **changes}


def test_engine_sidecar_round_trip_and_served_manifest():
    data = _sidecar(future={"k": 1})
    side = EngineSidecar.from_dict(data)
    assert side.to_dict() == data
    served = side.served_manifest()
    # The engine serves its own profile and precision, not the ONNX's promise (1..32, fp32).
    assert served.batch == BatchSpec(dynamic=True, min=1, max=8, opt=4)
    assert served.precision == "fp16" and side.manifest.batch.max == 32


@pytest.mark.parametrize(
    "change",
    [{"format": "other"}, {"format_version": 9}, {"profile": {"min": [1]}}, {"tensorrt": None}, {"manifest": {}}],
)
def test_bad_engine_sidecar_is_refused(change):
    with pytest.raises(ManifestError):
        EngineSidecar.from_dict(_sidecar(**change))
