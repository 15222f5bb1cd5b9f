"""read_manifest: the one reader, for ONNX (embedded or sidecar) and engines, with one-line errors."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from acmix_deploy.manifest import (
    MANIFEST_KEY,
    BatchSpec,
    EngineSidecar,
    Manifest,
    ManifestError,
    Preprocessing,
    read_engine_sidecar,
    read_manifest,
    sidecar_path,
)
from acmix_deploy.manifest.onnx_metadata import OnnxMetadataError, read_onnx_metadata


def _manifest(**changes) -> Manifest:
    return Manifest(
        family="acmix_resnet",
        hparams={"num_classes": 4},
        img_size=8,
        num_classes=4,
        preprocessing=Preprocessing.evaluation(8),
    ).replace(**changes)


def _onnx(path, metadata: dict[str, str] | None = None):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 192], [0.5] * 768)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1)],
        "g",
        [x],
        [y],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], doc_string="d" * 300)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_metadata_reader_agrees_with_onnx(tmp_path):
    meta = {MANIFEST_KEY: _manifest().to_json(), "other": "ünïcode ✓", "empty": ""}
    path = _onnx(tmp_path / "m.onnx", meta)
    assert read_onnx_metadata(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props} == meta


def test_metadata_reader_on_a_real_export(small_artifacts):
    path = small_artifacts["onnx"]
    assert read_onnx_metadata(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_embedded_manifest_wins_over_the_sidecar(tmp_path):
    path = _onnx(tmp_path / "m.onnx", {MANIFEST_KEY: _manifest(precision="fp32").to_json()})
    sidecar_path(path).write_text(_manifest(precision="mixed").to_json())
    assert read_manifest(path).precision == "fp32"


def test_sidecar_is_used_when_nothing_is_embedded(tmp_path):
    path = _onnx(tmp_path / "m.onnx")
    sidecar_path(path).write_text(_manifest(labels=list("abcd")).to_json())
    assert read_manifest(path).labels == list("abcd")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"format_version": 7}).encode(), "format_version"),
        (b"[" * 100000 + b"]" * 100000, "JSON"),
    ],
)
def test_bad_sidecars_give_one_line_errors_naming_the_file(tmp_path, content, match):
    path = _onnx(tmp_path / "m.onnx")
    sidecar_path(path).write_bytes(content)
    with pytest.raises(ManifestError, match=match) as info:
        read_manifest(path)
    assert "\n" not in str(info.value) and "m.onnx.json" in str(info.value)


def test_missing_and_unreadable_artifacts(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "absent.onnx")
    with pytest.raises(ManifestError, match="no acmix-deploy manifest"):
        read_manifest(_onnx(tmp_path / "bare.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10)  # a length far past the end of the file
    with pytest.raises(ManifestError, match="not a readable ONNX"):
        read_manifest(junk)


@pytest.mark.parametrize("data", [b"\x80", b"\x0a\x05ab", b"\x72\x04\x08\x01\x10\x02", b"\x00\x01", b"\x0b"])
def test_metadata_reader_rejects_malformed_protobuf(tmp_path, data):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(OnnxMetadataError):
        read_onnx_metadata(path)


def _engine(tmp_path, sidecar: dict | bytes):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan bytes")
    side = sidecar_path(engine)
    side.write_bytes(sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode())
    return engine


def test_engine_manifest_comes_from_its_profile(tmp_path):
    side = EngineSidecar(
        manifest=_manifest(batch=BatchSpec(max=32)),
        precision="fp16",
        profile={"min": [2, 3, 8, 8], "opt": [4, 3, 8, 8], "max": [4, 3, 8, 8]},
        tensorrt_version="10.16",
        gpu_name="gpu",
        compute_capability="9.0",
    )
    engine = _engine(tmp_path, side.to_dict())
    manifest = read_manifest(engine)
    assert manifest.batch == BatchSpec(dynamic=True, min=2, max=4, opt=4) and manifest.precision == "fp16"
    assert read_engine_sidecar(engine) == side


def test_engine_profiles_are_typed_and_old_sidecars_read_losslessly(tmp_path):
    """Every optimisation profile is an EngineProfile; a sidecar without ``profiles`` (older writers) has its
    ``profile`` alone and writes back as it was read; a newer writer's keys in a profile are kept."""
    from acmix_deploy.manifest import EngineProfile

    shapes = {"input": "input", "min": [2, 3, 8, 8], "opt": [4, 3, 8, 8], "max": [4, 3, 8, 8]}
    old = {"format": "acmix-deploy.tensorrt-engine", "format_version": 1, "precision": "fp16", "profile": shapes,
           "tensorrt": {"version": "10.16"}, "gpu": {"name": "g", "compute_capability": "9.0"},
           "manifest": _manifest(batch=BatchSpec(max=32)).to_dict()}  # fmt: skip
    side = read_engine_sidecar(_engine(tmp_path, old))
    assert side.profiles == () and side.engine_profiles == (EngineProfile((2, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8),
                                                                          "input"),)  # fmt: skip
    assert {k: v for k, v in side.to_dict().items() if k in old} == old and "profiles" not in side.to_dict()
    listed = [shapes, {"min": [8, 3, 8, 8], "max": [16, 3, 8, 8], "future": {"x": 1}}]  # no opt, no input: older
    side = read_engine_sidecar(_engine(tmp_path, {**old, "profiles": listed}))
    second = side.profiles[1]
    assert isinstance(second, EngineProfile) and second.opt is None and second.extra == {"future": {"x": 1}}
    assert second.batch == BatchSpec(dynamic=True, min=8, max=16) and side.extra == {}
    assert side.to_dict()["profiles"] == listed
    with pytest.raises(ManifestError, match=r"is not \[batch, 3, 8, 8\]"):
        read_engine_sidecar(_engine(tmp_path, {**old, "profiles": [{**shapes, "max": [4, 3, 9, 9]}]}))
    # the served range must be made of listed profiles (batch 4 here is in none of them)
    short = {**shapes, "max": [3, 3, 8, 8], "opt": [3, 3, 8, 8]}
    with pytest.raises(ManifestError, match=r"serves batches 2\.\.4, which its listed profiles do not cover"):
        read_engine_sidecar(_engine(tmp_path, {**old, "profiles": [short]}))


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b"{}", b'{"format": "acmix-deploy.tensorrt-engine"}'])
def test_corrupt_engine_sidecar_is_one_line_manifest_error(tmp_path, content):
    engine = _engine(tmp_path, content)
    with pytest.raises(ManifestError) as info:
        read_manifest(engine)
    assert "\n" not in str(info.value) and "m.engine.json" in str(info.value)


def test_engine_without_sidecar(tmp_path):
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"plan")
    with pytest.raises(ManifestError, match="no sidecar"):
        read_manifest(engine)


def _onnx_io(model: onnx.ModelProto) -> tuple[list, list]:
    """What onnx itself says the declared inputs (initializers excluded) and outputs are."""

    def dims(v):
        return tuple(
            d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in v.type.tensor_type.shape.dim
        )

    inits = {t.name for t in model.graph.initializer}
    return ([(v.name, dims(v)) for v in model.graph.input if v.name not in inits],
            [(v.name, dims(v)) for v in model.graph.output])  # fmt: skip


def test_graph_io_reader_agrees_with_onnx(tmp_path, small_artifacts):
    from acmix_deploy.manifest.onnx_metadata import read_onnx_io

    path = _onnx(tmp_path / "m.onnx", {MANIFEST_KEY: _manifest().to_json()})
    assert read_onnx_io(path) == _onnx_io(onnx.load(str(path))) == ([("input", ("batch", 3, 8, 8))],
                                                                     [("logits", ("batch", 4))])  # fmt: skip
    # an initializer also listed as an input (IR < 4 style), an unnamed free dim, no shape, two outputs
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"]), helper.make_node("Identity", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2]), helper.make_tensor_value_info("w", 1, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("z", 1, [-1, 2])],
        [w],
    )
    odd = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph), str(odd))
    assert read_onnx_io(odd) == _onnx_io(onnx.load(str(odd))) == ([("x", (None, 2))], [("y", ()), ("z", (-1, 2))])
    real = small_artifacts["onnx"]
    assert read_onnx_io(real) == _onnx_io(onnx.load(str(real)))


@pytest.mark.parametrize("data", [b"\x80", b"\x3a\x05ab", b"\x3a\x02\x5a\x05", b"\x00\x01", b"\x72\x00"])
def test_graph_io_reader_rejects_malformed_protobuf_and_a_file_without_graph(tmp_path, data):
    from acmix_deploy.manifest.onnx_metadata import read_onnx_io

    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(OnnxMetadataError):
        read_onnx_io(path)
