"""The int8 sensitivity pass (exporters/precision/sensitivity.py) driven by the real quantizer.

The model is built so that both candidate groups pay: a 3x3 convolution and a classifier, each
with one outlier weight, quantized per tensor, so int8 rounds every other weight of that layer
coarsely and keeping either layer in float cuts the logit error by well over a quarter.
"""

from __future__ import annotations

import typing

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy.exporters.precision import Int8Options, QuantizationRun, search_sensitive_groups
from acmix_deploy.exporters.precision.common import Fp32Source
from acmix_deploy.exporters.precision.int8_static import StaticQuantizer
from acmix_deploy.exporters.precision.sensitivity import SENSITIVITY_GAIN, sensitivity_candidates
from acmix_deploy.manifest import Manifest, Preprocessing

SIZE, CLASSES = 8, 10


def _two_sensitive_layers() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    conv[0, 0, 0, 0] = 10.0  # the outlier sets the per-tensor scale
    fc = rng.standard_normal((CLASSES, 8)).astype(np.float32) * 0.5
    fc[0, 0] = 5.0
    weights = {"w": conv, "b": np.zeros(8, np.float32), "fc": fc, "fcb": np.zeros(CLASSES, np.float32)}
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "two_sensitive_layers",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        [numpy_helper.from_array(a, name) for name, a in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def quantizer(tmp_path):
    manifest = Manifest(
        family="generic", hparams={}, img_size=SIZE, num_classes=CLASSES, preprocessing=Preprocessing.evaluation(SIZE)
    )
    source = Fp32Source(tmp_path / "model.onnx", _two_sensitive_layers(), manifest)
    images = np.random.default_rng(1).standard_normal((64, 3, SIZE, SIZE)).astype(np.float32)
    return StaticQuantizer(source, images, Int8Options(per_channel=False, samples=64), tmp_path)


def test_union_runs_when_the_budget_equals_the_group_count(quantizer):
    """The budget counts candidate groups; the union of the helpful ones is one run beyond it."""
    baseline = quantizer.quantize(())
    groups = sensitivity_candidates(quantizer.pre_model)
    assert groups == {"first_conv": ["conv0"], "classifier": ["fc"]}
    best, search = search_sensitive_groups(quantizer.quantize, baseline, groups, budget=len(groups))
    assert search["helpful"] == ["first_conv", "classifier"]  # the model is built for this
    for name in groups:
        assert search["nmse"][name] <= (1 - SENSITIVITY_GAIN) * search["nmse"]["none"]
    assert "first_conv+classifier" in search["nmse"]
    assert [r.excluded for r in quantizer.runs] == [(), ("conv0",), ("fc",), ("conv0", "fc")]
    # nothing else is quantizable here, so the union is exact and wins
    assert best.excluded == ("conv0", "fc") and search["kept_float"] == ["conv0", "fc"]
    assert best.logit_nmse < min(search["nmse"]["first_conv"], search["nmse"]["classifier"])


def test_budget_limits_the_groups_tried(quantizer):
    baseline = quantizer.quantize(())
    groups = sensitivity_candidates(quantizer.pre_model)
    best, search = search_sensitive_groups(quantizer.quantize, baseline, groups, budget=1)
    assert list(search["nmse"]) == ["none", "first_conv"]  # one group, so no union either
    assert [r.excluded for r in quantizer.runs] == [(), ("conv0",)]
    assert best.excluded == ("conv0",) and search["helpful"] == ["first_conv"]


def test_quantize_returns_what_it_declares(quantizer):
    """``quantize``'s return annotation is the object it returns, with a score callers can compare."""
    declared = typing.get_type_hints(StaticQuantizer.quantize)["return"]
    run = quantizer.quantize(["fc"])
    assert declared is QuantizationRun and isinstance(run, declared)
    assert isinstance(run.model, onnx.ModelProto) and run.excluded == ("fc",)
    assert run.score == (run.top1_agreement, -run.logit_nmse)
    assert 0.0 <= run.top1_agreement <= 1.0 and run.logit_nmse >= 0.0
    assert run.record() == {"excluded": ["fc"], "calib_top1_agreement": run.top1_agreement,
                            "calib_logit_nmse": run.logit_nmse}  # fmt: skip
