"""check_graph: the one comparison of a manifest with its ONNX graph (names, size, batch, classes)."""

from __future__ import annotations

import pytest

from acmix_deploy.manifest import BatchSpec, GraphTensor, Manifest, ManifestError, Preprocessing, check_graph
from acmix_deploy.manifest.graph import graph_mismatch


def _manifest(**changes) -> Manifest:
    base = Manifest(
        family="acmix_resnet",
        hparams={},
        img_size=8,
        num_classes=4,
        preprocessing=Preprocessing.evaluation(8),
        batch=BatchSpec(max=16),
    )
    return base.replace(**changes) if changes else base


def _graph(batch=None, size=8, classes=4, input_name="input", output_name="logits"):
    return [GraphTensor(input_name, (batch, 3, size, size))], [GraphTensor(output_name, (batch, classes))]


def test_a_manifest_that_describes_its_graph_passes():
    assert graph_mismatch(_manifest(), *_graph("batch")) == ""
    assert graph_mismatch(_manifest(batch=BatchSpec.fixed(4)), *_graph(4)) == ""
    assert graph_mismatch(_manifest(batch=BatchSpec(min=2, max=2)), *_graph(2)) == ""  # dynamic 2..2 is fixed 2
    check_graph("m.onnx", _manifest(), *_graph(None))


@pytest.mark.parametrize(
    ("manifest", "graph", "fragment"),
    [
        ({}, {"input_name": "pixels"}, "the manifest's input 'input' is not the graph's ['pixels']"),
        ({}, {"output_name": "scores"}, "the manifest's output 'logits' is not in the graph's ['scores']"),
        ({}, {"size": 16}, "input shape [None, 3, 16, 16] is not (batch, 3, 8, 8)"),
        ({"batch": BatchSpec.fixed(4)}, {"batch": "N"}, "the graph's batch is 'N', the manifest's is fixed 4"),
        ({"batch": BatchSpec.fixed(4)}, {"batch": 8}, "the graph's batch is 8, the manifest's is fixed 4"),
        ({}, {"batch": 1}, "the graph's batch is fixed at 1, the manifest's is dynamic 1..16"),
        ({}, {"classes": 7}, "output 'logits' has shape [None, 7], not (batch, 4)"),
        ({}, {"classes": "C"}, "output 'logits' has shape [None, 'C'], not (batch, 4)"),
    ],
)
def test_each_disagreement_is_one_line_naming_the_file(manifest, graph, fragment):
    with pytest.raises(ManifestError) as info:
        check_graph("dir/m.onnx", _manifest(**manifest), *_graph(**graph))
    message = str(info.value)
    assert message.startswith("dir/m.onnx: the graph does not match the manifest: ") and fragment in message
    assert "\n" not in message


def test_hostile_names_stay_on_one_bounded_line():
    inputs, outputs = _graph(input_name="a\nb" * 200)
    with pytest.raises(ManifestError) as info:
        check_graph("m.onnx", _manifest(), inputs, outputs)
    assert "\n" not in str(info.value) and len(str(info.value)) <= 300
