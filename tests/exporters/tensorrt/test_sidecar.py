"""The write stage: sidecar before plan, nothing replaced without force, nothing left behind on failure."""

from __future__ import annotations

import json

import pytest

from acmix_deploy.exporters.tensorrt.sidecar import (
    check_engine_outputs,
    engine_outputs,
    layers_path,
    write_engine_files,
)
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import sidecar_path

PLAN = b"ftrt" + bytes(range(256)) * 4  # stands for a serialized plan: written byte for byte
SIDECAR = {"format": "acmix-deploy.tensorrt-engine", "precision": "fp32"}


def test_engine_sidecar_and_layers_are_written(tmp_path):
    engine = tmp_path / "m.engine"
    layer_file = write_engine_files(engine, PLAN, SIDECAR, layer_info='{"Layers": []}\n')
    assert engine.read_bytes() == PLAN  # the plan as is: no prefix, any TensorRT tool loads it
    assert json.loads(sidecar_path(engine).read_text()) == SIDECAR
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
    assert json.loads(sidecar_path(engine).read_text()) == SIDECAR


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
