"""An ONNX model whose manifest disagrees with its graph is refused when loaded, not served wrong."""

from __future__ import annotations

import json

import pytest

from acmix_deploy.manifest import Manifest, ManifestError, Preprocessing
from acmix_deploy.runtimes import open_runner

from .conftest import tiny_classifier


def _with_sidecar(tmp_path, **changes):
    path = tiny_classifier(tmp_path / "m.onnx", img=32, classes=5)
    manifest = Manifest(
        family="generic",
        hparams={},
        img_size=32,
        num_classes=5,
        preprocessing=Preprocessing.evaluation(32),
        input_name="pixels",
        output_name="scores",
    ).to_dict()
    (tmp_path / "m.onnx.json").write_text(json.dumps({**manifest, **changes}))
    return path


def _load(path):
    runner = open_runner(path)
    try:
        return runner.manifest
    finally:
        runner.close()


def test_consistent_manifest_loads(tmp_path):
    assert _load(_with_sidecar(tmp_path)).num_classes == 5


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"num_classes": 7}, "(batch, 7)"),  # before: served, 5 scores named with 7 labels
        ({"output_name": "logits"}, "output 'logits'"),
        ({"input_name": "input"}, "input 'input'"),
    ],
)
def test_manifest_that_disagrees_with_the_graph_is_refused(tmp_path, changes, fragment):
    with pytest.raises(ManifestError) as info:
        _load(_with_sidecar(tmp_path, **changes))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_three_dimensional_output_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    path = _with_sidecar(tmp_path)
    model = onnx.load(path)
    model.graph.node.append(helper.make_node("Unsqueeze", ["scores", "axes"], ["scores3"]))
    model.graph.initializer.append(helper.make_tensor("axes", TensorProto.INT64, [1], [2]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("scores3", TensorProto.FLOAT, ["N", 5, 1]))
    onnx.save(model, path)
    data = json.loads((tmp_path / "m.onnx.json").read_text())
    (tmp_path / "m.onnx.json").write_text(json.dumps({**data, "output_name": "scores3"}))
    with pytest.raises(ManifestError, match=r"output 'scores3' has shape"):
        _load(path)
