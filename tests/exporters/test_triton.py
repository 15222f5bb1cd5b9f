"""Triton model repository: configs parsed with Triton's own schema, versions, refusals."""

from __future__ import annotations

import json
import os
import py_compile
import stat
import subprocess
import sys

import numpy as np
import pytest

from acmix_deploy.exporters.triton import TritonError, write_triton_repository
from acmix_deploy.manifest import MANIFEST_KEY, EngineSidecar, read_manifest, read_sidecar

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
    assert cfg.max_batch_size == manifest.batch.max == 8
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
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP32"  # the model's precision


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


def with_manifest(source, dest, **changes):
    """A copy of an exported ONNX whose embedded manifest says something else (the writer reads only that)."""
    import onnx

    proto = onnx.load(str(source))
    manifest = read_manifest(source).replace(**changes)
    for prop in proto.metadata_props:
        if prop.key == MANIFEST_KEY:
            prop.value = manifest.to_json()
    onnx.save(proto, str(dest))
    return dest


def test_a_new_version_keeps_the_models_config(small_artifacts, tmp_path):
    repo = tmp_path / "repo"
    write_triton_repository(small_artifacts["onnx"], repo, name="m", kind="gpu", instances=3, preferred_batch=[2])
    config = repo / "m" / "config.pbtxt"
    first = config.read_text()
    report = write_triton_repository(small_artifacts["onnx"], repo, name="m")
    assert report.version == 2 and not report.config_written and config.read_text() == first
    cfg = parse(config)
    assert (
        cfg.instance_group[0].count == 3 and cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    )
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2]
    # Hand edits survive a new version; settings asked for change only a config we can rewrite whole.
    config.write_text(first.replace("count: 3", "count: 5"))
    write_triton_repository(small_artifacts["onnx"], repo, name="m")
    assert parse(config).instance_group[0].count == 5 and (repo / "m" / "3").is_dir()
    write_triton_repository(small_artifacts["onnx"], repo, name="m", max_queue_delay_us=250)
    cfg = parse(config)
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 250 and cfg.instance_group[0].count == 5
    edited = config.read_text() + "version_policy: { all { } }\n"
    config.write_text(edited)
    write_triton_repository(small_artifacts["onnx"], repo, name="m")
    assert config.read_text() == edited and (repo / "m" / "5").is_dir()
    with pytest.raises(TritonError, match="edited by hand"):
        write_triton_repository(small_artifacts["onnx"], repo, name="m", instances=2)
    assert not (repo / "m" / "6").exists() and config.read_text() == edited


def test_versions_that_do_not_fit_the_model_are_refused(small_artifacts, tmp_path):
    repo = tmp_path / "repo"
    write_triton_repository(small_artifacts["onnx"], repo, name="m", ort_tensorrt=True, kind="gpu")
    small = with_manifest(
        small_artifacts["onnx"],
        tmp_path / "b4.onnx",
        batch=read_manifest(small_artifacts["onnx"]).batch.__class__(max=4),
    )
    with pytest.raises(TritonError, match="max_batch_size 8 but this artifact holds at most 4"):
        write_triton_repository(small, repo, name="m")
    half = with_manifest(small_artifacts["onnx"], tmp_path / "h.onnx", precision="fp16")
    with pytest.raises(TritonError, match="in FP32 but this artifact is fp16"):
        write_triton_repository(half, repo, name="m")
    named = with_manifest(small_artifacts["onnx"], tmp_path / "named.onnx", labels=[f"d{i}" for i in range(10)])
    with pytest.raises(TritonError, match="names other classes"):
        write_triton_repository(named, repo, name="m")
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    write_triton_repository(half, repo, name="h", ort_tensorrt=True, kind="gpu")
    accel = parse(repo / "h" / "config.pbtxt").optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.parameters["precision_mode"] == "FP16"


def test_engine_limits_come_from_its_profile(small_artifacts, tmp_path):
    onnx_manifest = read_manifest(small_artifacts["onnx"])
    assert onnx_manifest.batch.max == 8
    engine = tmp_path / "small.plan"
    engine.write_bytes(b"plan bytes do not matter to the repository writer")
    sidecar = EngineSidecar(
        manifest=onnx_manifest,
        precision="fp16",
        profile={"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [4, 3, 64, 64]},
        tensorrt_version="10.9.0",
        gpu_name="test GPU",
        compute_capability="9.0",
    )
    (tmp_path / "small.plan.json").write_text(json.dumps(sidecar.to_dict()))
    with pytest.raises(TritonError, match="limit of 4"):
        write_triton_repository(engine, tmp_path / "repo", kind="gpu", max_batch=8)
    report = write_triton_repository(engine, tmp_path / "repo", kind="gpu")
    cfg = parse(report.model_dir / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 4
    assert (report.model_dir / "1" / "model.plan").read_bytes() == engine.read_bytes()
    (tmp_path / "small.plan.json").write_text("{not json")
    with pytest.raises(TritonError, match="not valid JSON"):
        write_triton_repository(engine, tmp_path / "repo2", kind="gpu")


def _external(small_artifacts, folder, location="weights/small.bin"):
    import onnx

    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load(str(small_artifacts["onnx"]))
    path = folder / "ext.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, location=location, size_threshold=1024)
    return path


def test_external_data_travels_with_the_model(small_artifacts, tmp_path):
    import onnxruntime as ort

    model = _external(small_artifacts, tmp_path / "src")
    report = write_triton_repository(model, tmp_path / "repo", name="ext")
    version = report.model_dir / "1"
    assert report.data_files == ("weights/small.bin",)
    assert (version / "weights" / "small.bin").read_bytes() == (model.parent / "weights" / "small.bin").read_bytes()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    served = ort.InferenceSession(str(version / "model.onnx")).run(None, {"input": x})[0]
    expected = ort.InferenceSession(str(small_artifacts["onnx"])).run(None, {"input": x})[0]
    assert np.array_equal(served, expected)


def test_external_data_outside_the_models_folder_is_refused(small_artifacts, tmp_path):
    import onnx

    outside = _external(small_artifacts, tmp_path / "elsewhere", location="w.bin")
    src = tmp_path / "src"
    src.mkdir()
    cases = {"../elsewhere/w.bin": "lies outside", str(outside.parent / "w.bin"): "lies outside", "gone.bin": "missing"}
    (src / "link").symlink_to(outside.parent, target_is_directory=True)
    cases["link/w.bin"] = "lies outside"
    for location, message in cases.items():
        proto = onnx.load(str(outside), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(proto, str(src / "m.onnx"))
        with pytest.raises(TritonError, match=message) as info:
            write_triton_repository(src / "m.onnx", tmp_path / "repo")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "repo").exists()


def test_repository_files_are_readable_by_others(small_artifacts, tmp_path):
    old = os.umask(0o022)
    try:
        report = write_triton_repository(small_artifacts["onnx"], tmp_path / "repo", name="m")
    finally:
        os.umask(old)

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(report.model_dir / "config.pbtxt") == mode(report.model_dir / "labels.txt") == 0o644
    assert mode(report.model_dir / "1") == 0o755 and mode(report.model_dir / "1" / "model.onnx") == 0o644


def test_importing_the_writer_needs_no_onnx():
    code = "import sys; sys.modules['onnx'] = None; import acmix_deploy.exporters.triton"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
