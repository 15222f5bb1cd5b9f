"""The float16 graph rewrite (exporters/precision/fp16.py): where Casts go, and only there."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from acmix_deploy.exporters.precision import convert_fp16


def test_weights_are_stored_in_float16_not_cast_at_run_time(small_artifacts):
    """A weight read by float16 nodes is a float16 initializer: no Cast node ever reads an initializer."""
    source = onnx.load(str(small_artifacts["onnx"]))
    converted, stats = convert_fp16(source)
    inits = {t.name: t for t in converted.graph.initializer}
    assert not [n.name for n in converted.graph.node if n.op_type == "Cast" and n.input[0] in inits]
    added = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(n.op_type == "Cast" for n in source.graph.node)
    assert stats["casts"] == added > 0  # the count is of Casts that change a precision
    assert stats["initializers_fp16"] > 0
    # every float16 node reads float16 weights directly
    elem = {t.name: t.data_type for t in converted.graph.initializer}
    for node in converted.graph.node:
        if node.op_type == "Conv":
            assert elem[node.input[1]] == TensorProto.FLOAT16, node.name


def test_fp32_ops_read_float32_weights(small_artifacts):
    """Keeping an op float32 keeps its weights float32 (a float16 copy only for float16 readers)."""
    source = onnx.load(str(small_artifacts["onnx"]))
    converted, stats = convert_fp16(source, keep_fp32_ops=("Conv",))
    inits = {t.name: t.data_type for t in converted.graph.initializer}
    convs = [n for n in converted.graph.node if n.op_type == "Conv"]
    assert convs and all(inits[n.input[1]] == TensorProto.FLOAT for n in convs)
    assert "Conv" in stats["fp32_ops"]
    assert not [n.name for n in converted.graph.node if n.op_type == "Cast" and n.input[0] in inits]
