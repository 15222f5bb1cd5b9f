"""Triton model repository: configs parsed with Triton's own schema, versions, refusals."""

from __future__ import annotations

import json
import py_compile

import pytest

from acmix_deploy.exporters.triton import TritonError, write_triton_repository
from acmix_deploy.manifest import read_sidecar

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (test extra)")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path) -> object:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_onnx_repository_matches_the_manifest(small_artifacts, tmp_path):
    repo = tmp_path / "repo"
    report = write_triton_repository(small_artifacts["onnx"], repo, name="acmix", preferred_batch=[2, 4, 16])
    manifest = read_sidecar(small_artifacts["onnx"])
    cfg = parse(repo / "acmix" / "config.pbtxt")
    assert report.version == 1 and (repo / "acmix" / "1" / "model.onnx").is_file()
    assert cfg.name == "acmix" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == manifest.batch["max"] == 8
    assert list(cfg.input[0].dims) == [3, 64, 64] and cfg.input[0].name == "input"
    assert cfg.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(cfg.output[0].dims) == [10] and cfg.output[0].label_filename == "labels.txt"
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]  # 16 exceeds the artifact's limit
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert cfg.model_warmup[0].inputs["input"].random_data
    pre = json.loads(cfg.parameters["acmix_deploy.preprocessing"].string_value)
    assert pre["crop"] == 64 and pre["mean"] == [0.485, 0.456, 0.406]
    assert len((repo / "acmix" / "labels.txt").read_text().splitlines()) == 10
    py_compile.compile(str(repo / "triton_client_example.py"), doraise=True)


def test_gpu_options_and_new_versions(small_artifacts, tmp_path):
    repo = tmp_path / "repo"
    write_triton_repository(small_artifacts["onnx"], repo, name="m")
    report = write_triton_repository(
        small_artifacts["onnx"], repo, name="m", kind="gpu", instances=2, ort_tensorrt=True, max_batch=4
    )
    assert report.version == 2 and (repo / "m" / "1" / "model.onnx").is_file()
    cfg = parse(repo / "m" / "config.pbtxt")
    assert cfg.instance_group[0].count == 2 and cfg.max_batch_size == 4
    accel = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"


def test_fixed_batch_artifact_gets_batchless_config(small_artifacts, tmp_path):
    from acmix_deploy.exporters.onnx import export_onnx

    fixed = tmp_path / "fixed.onnx"
    export_onnx(small_artifacts["model"], fixed, img_size=64, batch=2)
    write_triton_repository(fixed, tmp_path / "repo")
    cfg = parse(tmp_path / "repo" / "fixed" / "config.pbtxt")
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [2, 3, 64, 64]
    assert not cfg.HasField("dynamic_batching")


def test_refusals(small_artifacts, tmp_path):
    repo = tmp_path / "repo"
    write_triton_repository(small_artifacts["onnx"], repo, name="m")
    before = (repo / "m" / "config.pbtxt").read_text()
    (repo / "m" / "config.pbtxt").write_text(before.replace("dims: [ 10 ]", "dims: [ 1000 ]"))
    with pytest.raises(TritonError, match="another --name"):
        write_triton_repository(small_artifacts["onnx"], repo, name="m")
    assert not (repo / "m" / "2").exists()
    with pytest.raises(TritonError, match="exceeds"):
        write_triton_repository(small_artifacts["onnx"], repo, name="x", max_batch=64)
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(TritonError, match="--kind gpu"):
        write_triton_repository(plan, repo)
    with pytest.raises(TritonError, match="no such file"):
        write_triton_repository(tmp_path / "missing.onnx", repo)
