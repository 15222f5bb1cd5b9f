"""Triton configs from hostile manifests and names: escaped, read back, checked against the graph, kept in REPO."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.triton import TritonError, write_triton_repository
from acmix_deploy.exporters.triton_check import ConfigTextError, check_config, parse, quote
from acmix_deploy.manifest import Manifest, Preprocessing

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (test extra)")
text_format = pytest.importorskip("google.protobuf.text_format")
onnx = pytest.importorskip("onnx")


def _tiny_onnx(path: Path, input_name: str, output_name: str, classes: int, size: int = 8) -> None:
    """A graph (N, 3, size, size) -> (N, classes): global average pool, then a matrix product."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, classes), np.float32), "#w")
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["#pooled"]),
        helper.make_node("Flatten", ["#pooled"], ["#flat"]),
        helper.make_node("MatMul", ["#flat", "#w"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", classes])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _manifest(**changes) -> dict:
    data = Manifest(
        family="acmix_resnet",
        hparams={},
        img_size=8,
        num_classes=3,
        preprocessing=Preprocessing.evaluation(8),
        batch={"max": 4},
    ).to_dict()
    return {**data, **changes}


def _artifact(folder: Path, manifest: dict, graph_names: tuple[str, str] | None = None, classes: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    names = graph_names or (manifest["input_name"], manifest["output_name"])
    _tiny_onnx(path, *names, classes=classes)
    (folder / "model.onnx.json").write_text(json.dumps(manifest))
    return path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize(
    "output_name",
    ['logits"\n  }\n]\nbackend: "python', 'x" } ] parameters { key: "EXECUTION_ENV_PATH"', "a\\", "out'put"],
)
def test_crafted_output_name_never_reaches_a_config(tmp_path, output_name):
    # Before: pasted into config.pbtxt, this name made a config that parses as another backend.
    artifact = _artifact(tmp_path / "a", _manifest(output_name=output_name), graph_names=("input", "logits"))
    with pytest.raises(TritonError, match="output_name") as info:
        write_triton_repository(artifact, tmp_path / "repo", name="m")
    assert "\n" not in str(info.value) and not (tmp_path / "repo").exists()


def test_manifest_names_must_be_the_graphs(tmp_path):
    artifact = _artifact(tmp_path / "a", _manifest(output_name="scores"), graph_names=("input", "logits"))
    with pytest.raises(TritonError, match="not in the graph"):
        write_triton_repository(artifact, tmp_path / "repo", name="m")
    artifact = _artifact(tmp_path / "b", _manifest(num_classes=7, labels=None))
    with pytest.raises(TritonError, match=r"not \(batch, 7\)"):
        write_triton_repository(artifact, tmp_path / "repo", name="m")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("name", ["../x", "../../x", "/abs/x", "a/b", "..", ".", ".hidden", "", "a\\b", "x" * 200])
def test_model_names_stay_inside_the_repository(tmp_path, name):
    artifact = _artifact(tmp_path / "a", _manifest())
    repo = tmp_path / "deep" / "repo"
    before = _files(tmp_path)
    with pytest.raises(TritonError, match="name"):
        write_triton_repository(artifact, repo, name=name)
    assert _files(tmp_path) == before


def test_hidden_artifact_name_gets_a_real_model_name(tmp_path):
    source = _artifact(tmp_path / "a", _manifest())
    hidden = tmp_path / "a" / ".hidden.onnx"
    os.rename(source, hidden)
    os.rename(source.with_name("model.onnx.json"), hidden.with_name(".hidden.onnx.json"))
    report = write_triton_repository(hidden, tmp_path / "repo")
    assert report.model_dir == tmp_path / "repo" / "hidden"  # was the repository root itself ('' as the name)


def test_linked_or_file_model_folder_is_refused(tmp_path):
    artifact = _artifact(tmp_path / "a", _manifest())
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir()
    outside.mkdir()
    os.symlink(outside, repo / "m")
    with pytest.raises(TritonError, match="link or not a folder"):
        write_triton_repository(artifact, repo, name="m")
    (repo / "f").write_text("")
    with pytest.raises(TritonError, match="link or not a folder"):
        write_triton_repository(artifact, repo, name="f")
    assert list(outside.iterdir()) == []


def test_a_stray_numbered_file_does_not_block_the_next_version(tmp_path):
    artifact = _artifact(tmp_path / "a", _manifest())
    (tmp_path / "repo" / "m").mkdir(parents=True)
    (tmp_path / "repo" / "m" / "1").write_text("not a version")
    report = write_triton_repository(artifact, tmp_path / "repo", name="m")  # was "Not a directory"
    assert report.version == 2 and (tmp_path / "repo" / "m" / "2" / "model.onnx").is_file()


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_quote_round_trips_through_tritons_own_parser(text):
    cfg = text_format.Parse(f"name: {quote(text)}", model_config_pb2.ModelConfig())
    assert cfg.name == text and parse(f"name: {quote(text)}") == {"name": [text]}


def test_check_config_refuses_what_was_not_meant():
    meant = dict(
        name="m",
        platform="onnxruntime_onnx",
        max_batch=4,
        tensors={"input": ("input", [3, 8, 8]), "output": ("logits", [3])},
        parameters={},
        warmup_input=None,
    )
    good = (
        'name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n'
        'input [ { name: "input" dims: [ 3, 8, 8 ] } ]\n'
        'output [ { name: "logits" dims: [ 3 ] label_filename: "labels.txt" } ]\n'
    )
    check_config(good, **meant)
    for evil in ('backend: "python"\n', 'output [ { name: "x" dims: [ 1 ] } ]\n', 'name: "other"\n'):
        with pytest.raises(ConfigTextError):
            check_config(good + evil, **meant)


_NAME = st.from_regex(r"[A-Za-z0-9_/][A-Za-z0-9_.:/-]{0,12}", fullmatch=True)
_ANY = st.text(max_size=16)


def _mostly(valid, invalid):
    """Valid values three times in four: every field must be valid at once for a config to be written."""
    return st.one_of(valid, valid, valid, invalid)


@given(
    input_name=_mostly(_NAME, _ANY),
    output_name=_mostly(_NAME, _ANY),
    model=_mostly(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True), _ANY),
    interpolation=_mostly(st.sampled_from(["bilinear", "bicubic"]), _ANY),
    labels=_mostly(
        st.none() | st.lists(st.from_regex(r"[a-z0-9 ]{1,8}", fullmatch=True), min_size=3, max_size=3),
        st.lists(_ANY, min_size=3, max_size=3),
    ),
    max_batch=_mostly(st.integers(1, 4), st.integers(-3, 0) | st.integers(5, 10**6)),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_manifests_give_exactly_the_intended_config_or_one_line(
    tmp_path_factory, input_name, output_name, model, interpolation, labels, max_batch
):
    root = tmp_path_factory.mktemp("prop")
    pre = {**Preprocessing.evaluation(8).to_dict(), "interpolation": interpolation}
    data = _manifest(input_name=input_name, output_name=output_name, preprocessing=pre, labels=labels)
    data["batch"] = {"dynamic": True, "min": 1, "max": max_batch}
    try:
        artifact = _artifact(root / "a", data)
    except Exception:  # noqa: BLE001 - onnx itself refuses some names (empty): nothing of ours is tested then
        return
    repo = root / "repo"
    try:
        report = write_triton_repository(artifact, repo, name=model)
    except AcmixDeployError as exc:
        assert "\n" not in str(exc) and not repo.exists()
        return
    assert report.model_dir.parent == repo and repo.resolve() in report.model_dir.resolve().parents
    cfg = text_format.Parse((report.model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.name == model and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == max_batch
    assert [i.name for i in cfg.input] == [input_name] and [o.name for o in cfg.output] == [output_name]
    assert list(cfg.input[0].dims) == [3, 8, 8] and list(cfg.output[0].dims) == [3]
    assert set(cfg.parameters) == {"acmix_deploy.preprocessing"} and not cfg.backend
    assert json.loads(cfg.parameters["acmix_deploy.preprocessing"].string_value)["interpolation"] == interpolation
    assert list(cfg.model_warmup[0].inputs) == [input_name]
    assert (report.model_dir / "labels.txt").read_text().splitlines() == (labels or [f"class_{i}" for i in range(3)])
