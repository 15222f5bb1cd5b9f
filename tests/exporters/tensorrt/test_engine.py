"""Stage 1 of the build, alone: everything decided before TensorRT is imported."""

from __future__ import annotations

import sys

import pytest

from acmix_deploy.exporters.tensorrt import BuildError, BuilderSettings
from acmix_deploy.exporters.tensorrt.engine import prepare_build
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import sidecar_path
from tests.exporters.test_tensorrt_build import tiny_onnx  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # stage 1 must not need it


def test_prepare_reads_the_onnx_and_decides_the_profile(tiny_onnx, tmp_path):  # noqa: F811
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"cached")
    seen = []
    request = prepare_build(
        tiny_onnx,
        tmp_path / "tiny.engine",
        precision="fp16",
        opt_batch=2,
        max_batch=4,
        settings=BuilderSettings(timing_cache=cache),
        progress=lambda stage, message: seen.append(stage),
    )
    assert (request.profile.min, request.profile.opt, request.profile.max) == ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
    assert request.manifest.num_classes == 10 and request.precision == "fp16"
    assert request.timing_cache_blob == b"cached" and request.graph is not None
    assert seen == ["profile"]
    assert not list(tmp_path.glob("tiny.engine*"))  # nothing written yet


def test_prepare_without_a_timing_cache_reads_none(tiny_onnx, tmp_path):  # noqa: F811
    assert prepare_build(tiny_onnx, tmp_path / "t.engine").timing_cache_blob is None


def test_prepare_refuses_existing_layer_file_only_when_layers_are_asked(tiny_onnx, tmp_path):  # noqa: F811
    engine = tmp_path / "t.engine"
    engine.with_name("t.engine.layers.json").write_text("mine")
    prepare_build(tiny_onnx, engine)
    with pytest.raises(OutputExistsError, match=r"t\.engine\.layers\.json"):
        prepare_build(tiny_onnx, engine, settings=BuilderSettings(detailed_profiling=True))
    sidecar_path(engine).write_text("{}")
    with pytest.raises(OutputExistsError, match=r"t\.engine\.json"):
        prepare_build(tiny_onnx, engine)


def test_prepare_refuses_unknown_precision_and_bad_profiles(tiny_onnx, tmp_path):  # noqa: F811
    with pytest.raises(BuildError, match="unknown precision 'bf16'"):
        prepare_build(tiny_onnx, tmp_path / "t.engine", precision="bf16")
    with pytest.raises(BuildError, match="outside what the ONNX was validated"):
        prepare_build(tiny_onnx, tmp_path / "t.engine", max_batch=9)
