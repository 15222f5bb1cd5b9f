"""The network stage on the CPU: readiness gate before TensorRT, creation flags, the manifest read."""

from __future__ import annotations

from enum import IntEnum

import onnx
import pytest
from onnx import TensorProto, helper

from acmix_deploy.exporters.tensorrt import BuildError
from acmix_deploy.exporters.tensorrt.network import network_creation_flags, read_onnx_manifest, refuse_unready_graph
from acmix_deploy.exporters.tensorrt.precision_flags import PrecisionPlan
from acmix_deploy.manifest import MANIFEST_KEY
from tests.exporters.test_tensorrt_build import _manifest, tiny_onnx  # noqa: F401 - fixture


class CreationFlag(IntEnum):
    """The bit positions of ``trt.NetworkDefinitionCreationFlag`` in TensorRT 10.16 (11.4 has STRONGLY_TYPED = 0)."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


def _graph(nodes, *, opset=20, name="g") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, _manifest().to_json()
    return model


def test_blockers_stop_the_build_with_their_nodes():
    model = _graph([helper.make_node("Unique", ["input"], ["logits"], name="dedupe")])
    with pytest.raises(BuildError, match=r"m.onnx is not ready for TensorRT 10:\n  \[blocker\] dedupe \(Unique\)"):
        refuse_unready_graph(model, "m.onnx", 10)


def test_warnings_are_reported_and_returned():
    model = _graph([helper.make_node("NotAnOp", ["input"], ["logits"], name="odd")])
    seen: list[tuple[str, str]] = []
    warnings = refuse_unready_graph(model, "m.onnx", 11, lambda stage, message: seen.append((stage, message)))
    assert len(warnings) == 1 and "odd (NotAnOp)" in warnings[0]
    assert seen == [("check", warnings[0])]


def test_a_major_without_support_data_is_left_to_the_parser():
    model = _graph([helper.make_node("Unique", ["input"], ["logits"])])
    assert refuse_unready_graph(model, "m.onnx", 12) == []


@pytest.mark.parametrize(
    ("names", "mask"), [((), 0), (("STRONGLY_TYPED",), 2), (("EXPLICIT_BATCH", "STRONGLY_TYPED"), 3)]
)
def test_network_creation_flags_are_bits(names, mask):
    assert network_creation_flags(PrecisionPlan(network_flags=names), CreationFlag.__members__) == mask


def test_read_onnx_manifest_refuses_two_inputs(tmp_path):
    model = _graph([helper.make_node("Add", ["input", "other"], ["logits"])])
    model.graph.input.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, ["batch", 3, 8, 8]))
    onnx.save(model, str(tmp_path / "two.onnx"))
    with pytest.raises(BuildError, match="expected one image input, found 2"):
        read_onnx_manifest(tmp_path / "two.onnx")


@pytest.mark.parametrize("content", [b"", b"not protobuf at all \xff\xfe"], ids=["empty", "garbage"])
def test_read_onnx_manifest_refuses_unreadable_files(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(BuildError) as info:
        read_onnx_manifest(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
