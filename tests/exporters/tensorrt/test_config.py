"""The builder-config stage's plain-data half: settings, their sidecar record, the timing-cache file."""

from __future__ import annotations

import sys

import pytest

from acmix_deploy.exporters.tensorrt import BuildError, build_engine
from acmix_deploy.exporters.tensorrt.config import GIB, BuilderSettings, read_timing_cache
from acmix_deploy.exporters.tensorrt.precision_flags import PrecisionPlan
from tests.exporters.test_tensorrt_build import tiny_onnx  # noqa: F401 - fixture


def test_settings_give_the_workspace_in_bytes():
    assert BuilderSettings(workspace_gb=0.5).workspace_bytes == GIB // 2
    assert BuilderSettings().workspace_bytes == 4 * GIB


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"workspace_gb": 0}, "workspace must be > 0"), ({"workspace_gb": -1.5}, "workspace"),
     ({"optimization_level": 6}, "0..5"), ({"optimization_level": -1}, "0..5")],
)  # fmt: skip
def test_settings_out_of_range_are_refused(kwargs, match):
    with pytest.raises(BuildError, match=match):
        BuilderSettings(**kwargs)


def test_settings_record_what_the_build_used(tmp_path):
    plan = PrecisionPlan(network_flags=("STRONGLY_TYPED",), builder_flags=("INT8", "FP16"), strongly_typed=True)
    record = BuilderSettings(workspace_gb=2.0, optimization_level=5, timing_cache=tmp_path / "t.cache").record(plan)
    assert record == {
        "workspace_gb": 2.0,
        "optimization_level": 5,
        "flags": ["INT8", "FP16"],
        "network_flags": ["STRONGLY_TYPED"],
        "strongly_typed": True,
        "timing_cache": str(tmp_path / "t.cache"),
        "version_compatible": False,
        "exclude_lean_runtime": False,
        "hardware_compatibility": "none",
    }
    assert BuilderSettings().record(PrecisionPlan())["timing_cache"] is None
    portable = BuilderSettings(version_compatible=True, exclude_lean_runtime=True, hardware_compatibility="ampere-plus")
    assert portable.record(PrecisionPlan())["hardware_compatibility"] == "ampere-plus"
    assert (
        portable.record(PrecisionPlan())["version_compatible"]
        and portable.record(PrecisionPlan())["exclude_lean_runtime"]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hardware_compatibility": "turing-plus"}, "hardware compatibility must be one of none, ampere-plus"),
     ({"exclude_lean_runtime": True}, "only applies to version-compatible engines")],
)  # fmt: skip
def test_impossible_portability_is_refused(kwargs, match):
    with pytest.raises(BuildError, match=match):
        BuilderSettings(**kwargs)


def test_timing_cache_is_read_when_present(tmp_path):
    cache = tmp_path / "timing.cache"
    assert read_timing_cache(cache) == b""  # not there yet: start an empty cache
    cache.write_bytes(b"\x01\x02cache")
    assert read_timing_cache(cache) == b"\x01\x02cache"


def test_timing_cache_directory_is_refused_before_tensorrt(tiny_onnx, tmp_path, monkeypatch):  # noqa: F811
    with pytest.raises(BuildError, match="must be a file"):
        read_timing_cache(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # proves the error comes before TensorRT is needed
    with pytest.raises(BuildError, match="must be a file"):
        build_engine(tiny_onnx, tmp_path / "tiny.engine", timing_cache=tmp_path)
    assert not (tmp_path / "tiny.engine").exists()
