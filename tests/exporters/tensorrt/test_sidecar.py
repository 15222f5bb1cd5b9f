"""The write stage: sidecar before plan, nothing replaced without force, nothing left behind on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acmix_deploy.exporters.tensorrt import BuildError, BuilderSettings, PrecisionPlan, compute_profile
from acmix_deploy.exporters.tensorrt.network import read_onnx_manifest
from acmix_deploy.exporters.tensorrt.sidecar import (
    check_engine_outputs,
    engine_outputs,
    layers_path,
    make_engine_sidecar,
    write_engine_files,
)
from acmix_deploy.fileio import OutputExistsError, sha256_file
from acmix_deploy.manifest import EngineSidecar, read_engine_sidecar, read_manifest, sidecar_path
from tests.exporters.test_tensorrt_build import _manifest, tiny_onnx  # noqa: F401 - fixture

PLAN = b"ftrt" + bytes(range(256)) * 4  # stands for a serialized plan: written byte for byte
GPU = {"name": "NVIDIA H200", "compute_capability": "9.0", "cuda": "12.8"}


def _sidecar(**profile) -> EngineSidecar:
    manifest = _manifest()
    return make_engine_sidecar(
        manifest=manifest,
        onnx_path=Path("m.onnx"),
        onnx_sha256="cd" * 32,
        profile=compute_profile("input", ["batch", 3, 8, 8], manifest.batch, **profile),
        precision="fp32",
        trt_version="10.16.1.11",
        gpu=GPU,
        build_seconds=3.14159,
        builder=BuilderSettings().record(PrecisionPlan(clear_flags=("TF32",))),
    )


SIDECAR = _sidecar()


def test_engine_sidecar_and_layers_are_written(tmp_path):
    engine = tmp_path / "m.engine"
    layer_file = write_engine_files(engine, PLAN, SIDECAR, layer_info='{"Layers": []}\n')
    assert engine.read_bytes() == PLAN  # the plan as is: no prefix, any TensorRT tool loads it
    assert json.loads(sidecar_path(engine).read_text()) == SIDECAR.to_dict()
    assert layer_file == layers_path(engine) and layer_file.read_text() == '{"Layers": []}\n'


def test_without_layer_info_no_layer_file(tmp_path):
    engine = tmp_path / "m.engine"
    assert write_engine_files(engine, PLAN, SIDECAR) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def test_existing_engine_is_kept_and_no_orphan_sidecar_is_left(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        write_engine_files(engine, PLAN, SIDECAR, layer_info="{}")
    assert engine.read_bytes() == b"keep"
    assert not sidecar_path(engine).exists() and not layers_path(engine).exists()


def test_force_replaces_all_three(tmp_path):
    engine = tmp_path / "m.engine"
    for path in engine_outputs(engine, layers=True):
        path.write_text("old")
    write_engine_files(engine, PLAN, SIDECAR, layer_info="new", force=True)
    assert engine.read_bytes() == PLAN and layers_path(engine).read_text() == "new"
    assert json.loads(sidecar_path(engine).read_text()) == SIDECAR.to_dict()


def test_outputs_are_checked_before_any_work(tmp_path):
    engine = tmp_path / "m.engine"
    assert engine_outputs(engine, layers=False) == [engine, sidecar_path(engine)]
    layers_path(engine).write_text("mine")
    check_engine_outputs(engine, layers=False, force=False)  # the layer file is not an output here
    with pytest.raises(OutputExistsError, match=r"m\.engine\.layers\.json"):
        check_engine_outputs(engine, layers=True, force=False)
    check_engine_outputs(engine, layers=True, force=True)
    sidecar_path(engine).write_text("{}")
    with pytest.raises(OutputExistsError, match=r"m\.engine\.json"):
        check_engine_outputs(engine, layers=False, force=False)


def test_what_the_builder_writes_the_one_reader_reads(tiny_onnx, tmp_path):  # noqa: F811
    """Build metadata from the ONNX's own manifest, write it, read it back through acmix_deploy.manifest."""
    manifest, name, shape, _ = read_onnx_manifest(tiny_onnx)
    sidecar = make_engine_sidecar(
        manifest=manifest,
        onnx_path=tiny_onnx,
        onnx_sha256=sha256_file(tiny_onnx),
        profile=compute_profile(name, shape, manifest.batch, opt_batch=2, max_batch=4),
        precision="fp16",
        trt_version="11.4.0.106",
        gpu=GPU,
        build_seconds=61.23456,
        builder={"workspace_gb": 4.0},
    )
    engine = tmp_path / "tiny.engine"
    write_engine_files(engine, PLAN, sidecar)
    back = read_engine_sidecar(engine)
    assert back == sidecar and back.build_seconds == 61.235 and back.onnx_file == "tiny.onnx"
    assert (back.tensorrt_version, back.gpu_name, back.compute_capability) == ("11.4.0.106", "NVIDIA H200", "9.0")
    served = read_manifest(engine)  # what a runner serves: the engine's precision and profile, not the ONNX's
    assert served.precision == "fp16" and served.batch.to_dict() == {"dynamic": True, "min": 1, "max": 4, "opt": 2}
    assert manifest.precision == "fp32" and manifest.batch.max == 8
    assert served.replace(precision="fp32", batch=manifest.batch) == manifest


def test_profile_outside_the_manifest_never_reaches_the_sidecar():
    with pytest.raises(BuildError, match="outside what the ONNX was validated"):
        _sidecar(max_batch=9)
