"""Every manifest and engine-sidecar field is checked where it is read: one line naming the field, never used."""

from __future__ import annotations

import pytest

from acmix_deploy.manifest import BatchSpec, EngineSidecar, Manifest, ManifestError, Preprocessing


def _manifest_dict(**changes) -> dict:
    data = Manifest(
        family="acmix_resnet",
        hparams={"width": 16},
        img_size=64,
        num_classes=10,
        preprocessing=Preprocessing.evaluation(64),
        labels=[str(i) for i in range(10)],
    ).to_dict()
    return {**data, **changes}


def _pre(**changes) -> dict:
    return {**Preprocessing.evaluation(64).to_dict(), **changes}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"preprocessing": _pre(mean=[0.5, 0.5])}, "preprocessing.mean"),
        ({"preprocessing": _pre(mean=[0.5, 0.5, float("nan")])}, "preprocessing.mean"),
        ({"preprocessing": _pre(mean=[0.5, 0.5, 10**400])}, "preprocessing.mean"),
        ({"preprocessing": _pre(mean=[0.5, True, 0.5])}, "preprocessing.mean"),
        ({"preprocessing": _pre(mean="0.5")}, "preprocessing.mean"),
        ({"preprocessing": _pre(std=[0, 0, 0])}, "preprocessing.std"),
        ({"preprocessing": _pre(std=[0.2, -0.2, 0.2])}, "preprocessing.std"),
        ({"preprocessing": _pre(resize=1.5)}, "preprocessing.resize"),
        ({"preprocessing": _pre(resize=-3)}, "preprocessing.resize"),
        ({"preprocessing": _pre(resize=10**9)}, "preprocessing.resize"),
        ({"preprocessing": _pre(crop="64")}, "preprocessing.crop"),
        ({"preprocessing": _pre(interpolation="lanczos")}, "preprocessing.interpolation"),
        ({"preprocessing": _pre(interpolation='bi"linear')}, "preprocessing.interpolation"),
        ({"preprocessing": _pre(layout="NHWC")}, "layout"),
        ({"preprocessing": _pre(crop=32)}, "preprocessing.crop"),  # the model takes 64 px
        ({"img_size": 10**9}, "img_size"),
        ({"num_classes": 10**7, "labels": None}, "num_classes"),
        ({"batch": {"max": 10**9}}, "batch.max"),
        ({"output_name": 'logits"\n  }\n]\nbackend: "python'}, "output_name"),
        ({"input_name": ""}, "input_name"),
        ({"input_name": 7}, "input_name"),
        ({"input_name": "x y"}, "input_name"),
        ({"output_name": "input"}, "input_name and output_name"),
        ({"family": "\x1b[31mred"}, "family"),
        ({"precision": "fp32\r"}, "precision"),
        ({"variant": "a\u202eb"}, "variant"),
        ({"created": "x" * 1000}, "created"),
        ({"rewrite": "yes"}, "rewrite"),
        ({"opset": 17.0}, "opset"),
        ({"precision_report": [1]}, "precision_report"),
        ({"labels": ["\x1b]0;title\x07"] + [str(i) for i in range(1, 10)]}, "labels"),
        ({"labels": ["cat/dog"] + [str(i) for i in range(1, 10)]}, "labels"),
        ({"labels": [" a"] + [str(i) for i in range(1, 10)]}, "labels"),
        ({"labels": ["x" * 300] + [str(i) for i in range(1, 10)]}, "labels"),
    ],
)
def test_bad_field_is_refused_naming_it(change, field):
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(_manifest_dict(**change))
    message = str(info.value)
    assert field in message and "\n" not in message and "\x1b" not in message and "\r" not in message


def test_valid_values_stay_as_they_were():
    # Integers are accepted for mean/std (JSON writers may drop ".0"); names torch.onnx gives are fine.
    data = _manifest_dict(preprocessing=_pre(mean=[0, 0, 0], std=[1, 1, 1]), input_name="input.1", output_name="495")
    m = Manifest.from_dict(data)
    assert m.preprocessing.mean == (0.0, 0.0, 0.0) and m.output_name == "495"
    assert Manifest.from_dict(m.to_dict()) == m
    assert Manifest.from_dict(_manifest_dict(output_name="/fc/Gemm_output_0", labels=["é", *"123456789"]))


def _sidecar(**profile_changes) -> dict:
    profile = {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64], **profile_changes}
    return EngineSidecar(
        manifest=Manifest.from_dict(_manifest_dict(batch=BatchSpec(max=32).to_dict())),
        precision="fp16",
        profile=profile,
        tensorrt_version="10.16.1",
        gpu_name="NVIDIA H200",
        compute_capability="9.0",
    ).to_dict()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max": [0, 3, 64, 64]}, "batch"),
        ({"max": [-3, 3, 64, 64]}, "batch"),
        ({"max": [8.5, 3, 64, 64]}, "4 integers"),
        ({"max": [8, 3, 96, 96]}, r"is not \[batch, 3, 64, 64\]"),
        ({"opt": [16, 3, 64, 64]}, "batch.opt"),
        ({"min": "1x3x64x64"}, "4 integers"),
    ],
)
def test_engine_profile_is_checked_against_its_manifest(change, fragment):
    data = _sidecar()
    data["profile"] = {**data["profile"], **change}
    with pytest.raises(ManifestError, match=fragment):
        EngineSidecar.from_dict(data)


def test_engine_sidecar_strings_are_printable():
    data = _sidecar()
    data["gpu"] = {**data["gpu"], "name": "H200\x1b[2J"}
    with pytest.raises(ManifestError, match="gpu_name"):
        EngineSidecar.from_dict(data)
    data = _sidecar()
    data["build_seconds"] = float("nan")
    with pytest.raises(ManifestError, match="build_seconds"):
        EngineSidecar.from_dict(data)
