"""Readiness findings shown grouped with counts and what to do (exporters/tensorrt/findings.py)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy.exporters.tensorrt import check_tensorrt_readiness, format_findings
from acmix_deploy.exporters.tensorrt.findings import ORT_INT8_ADVICE, Finding, group_findings


def _u8_qdq_chain(links: int) -> onnx.ModelProto:
    """x -> (QuantizeLinear -> DequantizeLinear) x ``links`` with UINT8 zero points: ORT CPU's int8 form."""
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(128, np.uint8), "zero")
    nodes, name = [], "x"
    for i in range(links):
        nodes += [
            helper.make_node("QuantizeLinear", [name, "scale", "zero"], [f"q{i}"], name=f"q{i}"),
            helper.make_node("DequantizeLinear", [f"q{i}", "scale", "zero"], [f"d{i}"], name=f"d{i}"),
        ]
        name = f"d{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])],
        [scale, zero],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_cpu_int8_graph_reads_as_two_counted_lines_and_the_tensorrt_form_to_export():
    findings = check_tensorrt_readiness(_u8_qdq_chain(5), trt_major=10)
    assert sum(f.code == "qdq-asymmetric" for f in findings) == 10  # one per node
    text = format_findings(findings)
    lines = text.splitlines()
    assert "[blocker] 5 QuantizeLinear nodes (qdq-asymmetric): UINT8 zero point" in lines[0]
    assert lines[1] == "    e.g. q0, q1, q2 (+2 more)"
    assert lines[2].startswith("[blocker] 5 DequantizeLinear nodes (qdq-asymmetric)")
    assert lines[-2:] == ["what to do:", f"  - {ORT_INT8_ADVICE}"]  # said once, not once per group
    assert "--int8-target tensorrt" in ORT_INT8_ADVICE and len(lines) == 6


def test_single_findings_keep_their_own_line_and_blockers_come_first():
    findings = [
        Finding("info", "input", "", "dynamic batch axis", "dynamic-batch"),
        Finding("warning", "n1", "Squeeze", "name the axes", "restriction"),
        Finding("blocker", "n2", "Foo", "Foo is not supported", "unsupported-op"),
        Finding("blocker", "n3", "Foo", "Foo is not supported", "unsupported-op"),
    ]
    groups = group_findings(findings)
    assert [(g.severity, len(g.nodes)) for g in groups] == [("blocker", 2), ("warning", 1), ("info", 1)]
    text = format_findings(findings).splitlines()
    assert text[0] == "[blocker] 2 Foo nodes (unsupported-op): Foo is not supported"
    assert text[1] == "    e.g. n2, n3"
    assert text[2] == "[warning] n1 (Squeeze): name the axes" and text[3] == "[info] input: dynamic batch axis"
    assert text[-1] == "  - re-export without these ops, or give TensorRT a plugin for them"
    assert groups[0].to_dict()["count"] == 2 and format_findings([]) == ""
