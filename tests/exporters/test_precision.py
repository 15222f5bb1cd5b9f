"""Precision variants of an fp32 ONNX: float16/mixed (exporters.precision.to_fp16) and INT8 (to_int8)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.exporters.precision import MEASURE_ONLY, PrecisionError, to_fp16, to_int8
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import MANIFEST_KEY, Manifest, sidecar_path
from acmix_deploy.models import build_model
from acmix_deploy.parity import random_inputs
from acmix_deploy.runtimes.onnxruntime import ort_session
from tests.conftest import SMALL_SWIN, randomize

# The float16 model vs the fp32 one on standard-normal inputs (random-weight small models, logits
# of scale ~1-5): measured max|diff| ~2e-3 (ResNet) / ~1e-3 (Swin), cosine > 0.99999.
FP16_ATOL_REL = 1e-2
FP16_MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def swin_onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("swin")
    model = randomize(build_model("acmix_swin_tiny", **SMALL_SWIN), seed=32)
    path = root / "swin.onnx"
    export_onnx(model, path, validate_batches=[2], max_batch=8)
    return path


def _manifest(path) -> dict:
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    embedded = json.loads(meta[MANIFEST_KEY])
    assert json.loads(sidecar_path(path).read_text()) == embedded
    Manifest.from_dict(embedded)  # reads back with the package's own loader
    return embedded


def _logits(path, x) -> np.ndarray:
    return ort_session(path).run(None, {"input": x})[0]


def _check_fp16(src, dst):
    report = to_fp16(src, dst)
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    assert all(t.type.tensor_type.elem_type == TensorProto.FLOAT for t in (*g.input, *g.output))
    types = {t.data_type for t in g.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)}
    assert TensorProto.FLOAT16 in types
    weights = [t for t in g.initializer if len(t.dims) == 4]  # conv kernels: all float16
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    inferred = onnx.shape_inference.infer_shapes(model)
    elem = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *g.input, *g.output)}
    elem.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:
        if node.op_type in ("LayerNormalization", "Softmax", "ReduceMean"):
            assert elem[node.input[0]] == TensorProto.FLOAT, node.name
            assert elem[node.output[0]] == TensorProto.FLOAT, node.name
        if node.op_type in ("Conv", "Gemm"):
            assert elem[node.output[0]] == TensorProto.FLOAT16, node.name

    numpy_ref = report.details["numpy_fp16_reference"]  # float16 arithmetic in numpy (ORT CPU computes fp32)
    assert numpy_ref["cosine_min"] >= FP16_MIN_COSINE and numpy_ref["top1_agreement"] == 1.0
    manifest = _manifest(dst)
    assert manifest["precision"] == report.precision == "mixed"
    assert manifest["precision_report"]["parity"]["top1_agreement"] >= 0.9
    x = random_inputs(3, manifest["img_size"], seed=9)
    ref, out = _logits(src, x), _logits(dst, x)
    assert np.abs(ref - out).max() <= FP16_ATOL_REL * max(1.0, float(np.abs(ref).max()))
    cos = np.sum(ref * out, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() >= FP16_MIN_COSINE
    return report


def test_fp16_resnet(small_artifacts, tmp_path):
    report = _check_fp16(small_artifacts["onnx"], tmp_path / "r16.onnx")
    assert "Softmax" in report.details["conversion"]["fp32_ops"]


def test_fp16_swin(swin_onnx, tmp_path):
    report = _check_fp16(swin_onnx, tmp_path / "s16.onnx")
    assert "LayerNormalization" in report.details["conversion"]["fp32_ops"]


def test_fp16_output_exists_needs_force(small_artifacts, tmp_path):
    dst = tmp_path / "r16.onnx"
    dst.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        to_fp16(small_artifacts["onnx"], dst)
    assert dst.read_bytes() == b"keep me"
    to_fp16(small_artifacts["onnx"], dst, force=True)
    assert _manifest(dst)["precision"] == "mixed"


def test_bad_sources(small_artifacts, tmp_path):
    with pytest.raises(PrecisionError, match="no such"):
        to_fp16(tmp_path / "missing.onnx", tmp_path / "out.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx file")
    with pytest.raises(PrecisionError):
        to_fp16(garbage, tmp_path / "out.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), plain)
    with pytest.raises(PrecisionError, match="not an acmix-deploy ONNX"):
        to_fp16(plain, tmp_path / "out.onnx")
    calib = random_inputs(4, 64, seed=0)
    with pytest.raises(PrecisionError, match="target"):
        to_int8(small_artifacts["onnx"], tmp_path / "q.onnx", calibration=calib, target="gpu")
    with pytest.raises(PrecisionError, match="method"):
        to_int8(small_artifacts["onnx"], tmp_path / "q.onnx", calibration=calib, method="magic")
    with pytest.raises(PrecisionError, match="shape"):
        to_int8(small_artifacts["onnx"], tmp_path / "q.onnx", calibration=random_inputs(4, 32, seed=0))
    with pytest.raises(PrecisionError, match="calibration folder"):
        to_int8(small_artifacts["onnx"], tmp_path / "q.onnx", calibration=tmp_path / "nowhere")
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "q.onnx").exists()
    # a converted model is not a source
    half = to_fp16(small_artifacts["onnx"], tmp_path / "h.onnx").path
    with pytest.raises(AcmixDeployError, match="fp32") as refused:  # the CLI's one-line errors catch ours
        to_fp16(half, tmp_path / "h2.onnx")
    message = str(refused.value)
    assert isinstance(refused.value, PrecisionError) and "\n" not in message and "h.onnx" in message


def _check_symmetric_qdq(path):
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        assert len(node.input) == 3, node.name
        zp = inits[node.input[2]]
        assert zp.data_type == TensorProto.INT8, node.name
        assert not onnx.numpy_helper.to_array(zp).any(), node.name
    # only Conv/MatMul/Gemm get quantized weights; no integer operators (QLinearConv ...): pure Q/DQ
    weight_dq = {n.output[0] for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    consumers = {n.op_type for n in model.graph.node if weight_dq.intersection(n.input)}
    assert weight_dq and consumers <= {"Conv", "MatMul", "Gemm"}
    assert not [
        n.op_type for n in model.graph.node if n.op_type.startswith(("QLinear", "ConvInteger", "MatMulInteger"))
    ]


def test_int8_tensorrt_small(small_artifacts, tmp_path):
    calib = random_inputs(16, 64, seed=3)
    dst = tmp_path / "q.onnx"
    report = to_int8(
        small_artifacts["onnx"],
        dst,
        calibration=calib,
        target="tensorrt",
        samples=16,
        sensitivity=False,
        tolerance=MEASURE_ONLY,  # random weights and inputs: recorded, not judged
    )
    _check_symmetric_qdq(dst)
    manifest = _manifest(dst)
    assert manifest["precision"] == "int8" and manifest["int8_target"] == "tensorrt"
    assert manifest["calibration"]["samples"] == 13 and manifest["calibration"]["method"] == "minmax"  # 3 held out
    assert report.details["int8_target"] == "tensorrt"
    assert _logits(dst, calib[:2]).shape == (2, 10)
    with pytest.raises(OutputExistsError):
        to_int8(small_artifacts["onnx"], dst, calibration=calib, target="tensorrt", sensitivity=False)


def test_int8_cpu_small_runs(small_artifacts, tmp_path):
    calib = random_inputs(16, 64, seed=3)
    dst = tmp_path / "q.onnx"
    to_int8(
        small_artifacts["onnx"], dst, calibration=calib, target="cpu", samples=16, sensitivity=False,
        tolerance=MEASURE_ONLY,  # random weights and inputs: recorded, not judged
    )  # fmt: skip
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert "QLinearConv" in ops
    out = _logits(dst, calib[:3])
    assert out.shape == (3, 10) and np.isfinite(out).all()
    assert _manifest(dst)["int8_target"] == "cpu"


@pytest.mark.slow
def test_int8_tensorrt_accuracy_on_digits(digits, tmp_path):
    from importlib.resources import files

    ckpt = files("acmix_deploy") / "data" / "demo" / "digits_acmix_resnet26.pth"
    fp32 = tmp_path / "r26.onnx"
    export_onnx(str(ckpt), fp32, img_size=64, validate_batches=[2])
    report = to_int8(
        fp32, tmp_path / "q.onnx", calibration=digits["train"], target="tensorrt", samples=128, eval_dir=digits["test"]
    )
    _check_symmetric_qdq(tmp_path / "q.onnx")
    acc = report.accuracy
    assert acc["images"] == 359
    assert acc["top1_percent"] >= acc["fp32_top1_percent"] - 1.0
    half = to_fp16(fp32, tmp_path / "h.onnx", eval_dir=digits["test"])
    assert half.accuracy["top1_percent"] >= half.accuracy["fp32_top1_percent"] - 0.1


def test_dynamic_int8_runs_and_records_itself(small_artifacts, tmp_path):
    """Dynamic quantization needs no calibration; the manifest says which int8 form it is."""
    from acmix_deploy.exporters.precision import to_int8_dynamic
    from acmix_deploy.manifest import read_sidecar

    dst = tmp_path / "dyn.onnx"
    report = to_int8_dynamic(small_artifacts["onnx"], dst)
    ops = {n.op_type for n in onnx.load(dst).graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    assert report.parity["cosine_min"] >= 0.99 and report.parity["passed"]
    data = json.loads((tmp_path / "dyn.onnx.json").read_text())
    assert data["precision"] == "int8" and data["int8_target"] == "cpu-dynamic"
    speed = data["precision_report"]["speed"]  # measured side by side, so a slower int8 is visible
    assert speed["fp32_p50_ms"] > 0 and speed["variant_p50_ms"] > 0 and speed["batch"] == 1
    assert speed["speedup_vs_fp32"] == pytest.approx(speed["fp32_p50_ms"] / speed["variant_p50_ms"], rel=0.01)
    assert "ORT CPU batch 1" in report.describe()
    assert read_sidecar(dst).precision == "int8"
    x = np.zeros((2, 3, 64, 64), np.float32)
    assert ort_session(dst).run(None, {"input": x})[0].shape == (2, 10)
    with pytest.raises(OutputExistsError):
        to_int8_dynamic(small_artifacts["onnx"], dst)
