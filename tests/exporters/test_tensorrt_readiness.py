"""The CPU readiness check: our exports pass, hand-made bad graphs fail with the right finding."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy import build_model
from acmix_deploy.exporters.tensorrt import (
    SUPPORT_TABLE,
    check_tensorrt_readiness,
    format_findings,
    has_blockers,
)
from tests.conftest import SMALL_RESNET, SMALL_SWIN, randomize


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Small ResNet (dynamic and fixed batch) and Swin exports, written by our exporter."""
    from acmix_deploy.exporters.onnx import export_onnx

    root = tmp_path_factory.mktemp("trt_ready")
    resnet = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=3)
    swin = randomize(build_model("acmix_swin_tiny", **SMALL_SWIN), seed=4)
    paths = {
        "resnet": root / "resnet.onnx",
        "resnet_fixed": root / "resnet_b2.onnx",
        "swin": root / "swin.onnx",
    }
    export_onnx(resnet, paths["resnet"], img_size=64, validate=False, max_batch=8)
    export_onnx(resnet, paths["resnet_fixed"], img_size=64, validate=False, batch=2)
    export_onnx(swin, paths["swin"], validate=False, max_batch=8)
    return paths


@pytest.mark.parametrize("major", [10, 11])
@pytest.mark.parametrize("name", ["resnet", "resnet_fixed", "swin"])
def test_our_exports_have_no_blockers(exported, name, major):
    findings = check_tensorrt_readiness(exported[name], trt_major=major)
    assert not has_blockers(findings), format_findings(findings)
    assert not [f for f in findings if f.severity == "warning"], format_findings(findings)


def test_swin_layernorm_is_fused(exported):
    findings = check_tensorrt_readiness(onnx.load(str(exported["swin"])))
    assert any(f.code == "layernorm-fused" for f in findings)


# -- hand-made graphs ----------------------------------------------------------------------------
def _model(nodes, inits=(), *, opset=20, inputs=None, outputs=None):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _codes(model, major=10, severity="blocker"):
    return {f.code for f in check_tensorrt_readiness(model, trt_major=major) if f.severity == severity}


def test_clean_graph_passes():
    assert _codes(_model([helper.make_node("Relu", ["x"], ["y"], name="relu")])) == set()


def test_unsupported_op():
    model = _model([helper.make_node("Unique", ["x"], ["y"], name="uniq")])
    findings = check_tensorrt_readiness(model)
    bad = [f for f in findings if f.code == "unsupported-op"]
    assert bad and bad[0].node == "uniq" and bad[0].op == "Unique" and bad[0].severity == "blocker"


def test_unknown_and_custom_domain_ops():
    assert "unknown-op" in _codes(_model([helper.make_node("NotAnOp", ["x"], ["y"])]), severity="warning")
    custom = _model([helper.make_node("MyOp", ["x"], ["y"], domain="com.example")])
    assert "custom-domain" in _codes(custom)


def test_float64_initializer_and_cast():
    w = numpy_helper.from_array(np.ones((1,), np.float64), "w")
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE, name="cast")], [w])
    findings = [f for f in check_tensorrt_readiness(model) if f.code == "float64"]
    assert {f.node for f in findings} == {"w", "cast"}


def test_pad_with_non_constant_pads():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Concat", ["s", "s"], ["pads"], axis=0, name="concat"),
        helper.make_node("Pad", ["x", "pads"], ["y"], name="pad"),
    ]
    findings = [f for f in check_tensorrt_readiness(_model(nodes)) if f.code == "non-constant-input"]
    assert findings and findings[0].node == "pad" and findings[0].severity == "warning"


def test_pad_with_constant_pads_passes():
    pads = numpy_helper.from_array(np.zeros(8, np.int64), "pads")
    assert _codes(_model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")], [pads])) == set()


def test_reshape_with_computed_shape_warns():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Concat", ["s", "s"], ["s2"], axis=0),
        helper.make_node("Reshape", ["x", "s2"], ["y"], name="r"),
    ]
    assert "non-constant-input" in _codes(_model(nodes), severity="warning")
    sliced = [helper.make_node("Shape", ["x"], ["s"], start=1), helper.make_node("Reshape", ["x", "s"], ["y"])]
    assert "non-constant-input" in _codes(_model(sliced), severity="warning")


def test_reshape_to_another_tensors_shape_passes():
    """Shape -> Reshape ("Y to X's dimensions") is TensorRT's own dynamic-shape pattern: no finding."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"], name="r")]
    assert "non-constant-input" not in _codes(_model(nodes))


@pytest.mark.parametrize(
    ("zero_point", "expect"),
    [(np.int8(3), "qdq-asymmetric"), (np.uint8(0), "qdq-asymmetric"), (np.int8(0), None)],
)
def test_qdq_zero_point(zero_point, expect):
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(zero_point), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], name="dq"),
    ]
    codes = _codes(_model(nodes, [scale, zp]))
    assert (expect in codes) if expect else not codes


@pytest.mark.parametrize("major", [10, 11])
def test_opset_too_new_and_too_old(major):
    relu = [helper.make_node("Relu", ["x"], ["y"])]
    hi = SUPPORT_TABLE["majors"][major]["max_opset"]
    assert "opset-too-new" in _codes(_model(relu, opset=hi + 1), major)
    assert "opset-too-old" in _codes(_model(relu, opset=8), major)
    oldest = SUPPORT_TABLE["majors"][major]["max_opset_oldest_release"]
    if oldest < hi:
        assert "opset-recent" in _codes(_model(relu, opset=hi), major, severity="warning")


def test_dynamic_spatial_dims():
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])]
    findings = [f for f in check_tensorrt_readiness(_model([helper.make_node("Relu", ["x"], ["y"])], inputs=inputs))]
    bad = [f for f in findings if f.code == "dynamic-dims"]
    assert bad and bad[0].node == "x" and bad[0].severity == "blocker"


def test_restrictions():
    ln = helper.make_node("LayerNormalization", ["x", "g"], ["y", "mean"], name="ln")
    g = numpy_helper.from_array(np.ones(8, np.float32), "g")
    assert "restriction" in _codes(_model([ln], [g]))
    resize = helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic", name="rs")
    sc = numpy_helper.from_array(np.ones(4, np.float32), "sc")
    assert "restriction" in _codes(_model([resize], [sc]))


def test_unknown_major():
    with pytest.raises(ValueError, match="major version 9"):
        check_tensorrt_readiness(_model([helper.make_node("Relu", ["x"], ["y"])]), trt_major=9)


def test_table_records_source_and_date():
    assert SUPPORT_TABLE["retrieved"] == "2026-11"
    assert any("operators.md" in s for s in SUPPORT_TABLE["sources"])
    assert set(SUPPORT_TABLE["majors"]) == {10, 11}


def test_ops_added_within_a_major_warn_with_the_release():
    model = _model([helper.make_node("DFT", ["x"], ["y"], name="dft")])
    assert "unsupported-op" in _codes(model)  # TensorRT 10 has no DFT
    recent = [f for f in check_tensorrt_readiness(model, trt_major=11) if f.code == "op-recent"]
    assert recent and "11.2" in recent[0].message and recent[0].severity == "warning"


def test_model_local_function_is_not_a_custom_op():
    body = [helper.make_node("Relu", ["a"], ["b"])]
    function = helper.make_function("local.fn", "MyRelu", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    model = _model([helper.make_node("MyRelu", ["x"], ["y"], domain="local.fn", name="call")])
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    assert "custom-domain" not in _codes(model)
    # What the parser inlines is checked: an unsupported op inside a local function is found.
    hidden = helper.make_function("local.fn", "Spectrum", ["a"], ["b"], [helper.make_node("DFT", ["a"], ["b"])],
                                  [helper.make_opsetid("", 17)])  # fmt: skip
    model = _model([helper.make_node("Spectrum", ["x"], ["y"], domain="local.fn", name="call")])
    model.functions.append(hidden)
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    found = [f for f in check_tensorrt_readiness(model) if f.code == "unsupported-op"]
    assert found and found[0].op == "DFT" and found[0].node.startswith("call/")


def test_topk_limit_and_training_dropout():
    for value, refused in ((5000, True), (3840, False)):
        k = numpy_helper.from_array(np.array([value], np.int64), "k")
        topk = _model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")], [k])
        assert any(f.code == "restriction" and "3840" in f.message for f in check_tensorrt_readiness(topk)) == refused
    on = numpy_helper.from_array(np.array(True), "on")
    drop = _model([helper.make_node("Dropout", ["x", "", "on"], ["y"], name="drop")], [on])
    assert any(f.code == "restriction" and "training" in f.message for f in check_tensorrt_readiness(drop))


def test_resize_aspect_ratio_policy():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", keep_aspect_ratio_policy="not_larger")
    assert "restriction" in _codes(_model([node], [scales]))
    plain = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear")
    assert "restriction" not in _codes(_model([plain], [scales]))
