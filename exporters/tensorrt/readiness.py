"""Will TensorRT's ONNX parser take this graph? Answered on the CPU, before any GPU is involved.

``trt.Builder`` needs a CUDA device, so without one the parser cannot even be tried. This module
checks what can be checked from the ONNX alone against a versioned copy of NVIDIA's own support
data (:mod:`.support_table`): the opset range of each TensorRT major, the onnx-tensorrt operator
matrix with its restrictions, inputs that must be build-time constants, symmetric Q/DQ, no
float64 and dynamic dimensions only on the batch axis. :func:`~.engine.build_engine` runs it first
so a build fails in seconds with node names instead of minutes into a GPU session.

The graph-level checks live here; the per-node rules in :mod:`.node_checks`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from .findings import Finding
from .node_checks import DEFAULT_DOMAINS, Scope, check_call
from .support_table import SUPPORT_TABLE


def check_tensorrt_readiness(model: str | Path | onnx.ModelProto, *, trt_major: int = 10) -> list[Finding]:
    """Check an ONNX model against what TensorRT ``trt_major``'s parser supports.

    Args:
        model: an ONNX path or a loaded ``ModelProto``. External weight files are not read:
            every check needs only the graph and small constants.
        trt_major: the TensorRT major version to check against (10 or 11).

    Returns:
        The findings, in graph order; empty when nothing is worth saying.

    Raises:
        ValueError: ``trt_major`` is not in the table.
    """
    if trt_major not in SUPPORT_TABLE["majors"]:
        known = ", ".join(str(m) for m in SUPPORT_TABLE["majors"])
        raise ValueError(f"no TensorRT support data for major version {trt_major} (have: {known})")
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    scope = Scope.of_model(model, trt_major)
    graph = model.graph
    findings: list[Finding] = []
    findings += _check_opset(model, scope.table, trt_major)
    findings += _check_inputs(graph)
    findings += _check_float64(graph)
    for index, node in enumerate(graph.node):
        findings += check_call(node, index, scope)
    findings += _check_layernorm(model)
    findings += _check_int64(graph)
    return findings


# -- graph-level checks --------------------------------------------------------------------------
def _opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def _check_opset(model: onnx.ModelProto, table: dict, major: int) -> list[Finding]:
    opset = _opset(model)
    if opset is None:
        return [Finding("blocker", "", "", "the model imports no default-domain opset", "opset-missing")]
    lo, hi, oldest = table["min_opset"], table["max_opset"], table["max_opset_oldest_release"]
    if opset < lo:
        return [
            Finding(
                "blocker", "", "", f"opset {opset} is older than TensorRT {major} parses ({lo}..{hi})", "opset-too-old"
            )
        ]
    if opset > hi:
        return [
            Finding(
                "blocker",
                "",
                "",
                f"opset {opset} is newer than TensorRT {major} parses ({lo}..{hi}); re-export with a lower opset",
                "opset-too-new",
            )
        ]
    if opset > oldest:
        return [
            Finding(
                "warning",
                "",
                "",
                f"opset {opset} needs a recent TensorRT {major}.x (the first {major}.x releases stop at {oldest})",
                "opset-recent",
            )
        ]
    return []


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str | None]:
    shape = value_info.type.tensor_type
    if not shape.HasField("shape"):
        return []
    out: list[int | str | None] = []
    for d in shape.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _check_inputs(graph: onnx.GraphProto) -> list[Finding]:
    """Dynamic dims only on axis 0 of inputs: one optimisation profile covers the batch, nothing else."""
    initializers = {t.name for t in graph.initializer}
    findings = []
    for value in graph.input:
        if value.name in initializers:  # old-style graphs list weights as inputs
            continue
        dims = _dims(value)
        if not dims:
            findings.append(Finding("blocker", value.name, "", "input has no static rank", "dynamic-rank"))
            continue
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
        if any(i > 0 for i in dynamic):
            shape = "x".join(str(d) for d in dims)
            findings.append(
                Finding(
                    "blocker",
                    value.name,
                    "",
                    f"input shape {shape} is dynamic beyond the batch axis (axes {[i for i in dynamic if i > 0]}); "
                    "export with a fixed image size",
                    "dynamic-dims",
                )
            )
        elif 0 in dynamic:
            findings.append(
                Finding("info", value.name, "", "dynamic batch axis: one optimisation profile", "dynamic-batch")
            )
    for value in graph.output:
        dims = _dims(value)
        if any(not isinstance(d, int) or d <= 0 for d in dims[1:]):
            findings.append(
                Finding("warning", value.name, "", "output has dynamic dims beyond the batch axis", "dynamic-output")
            )
    return findings


def _check_float64(graph: onnx.GraphProto) -> list[Finding]:
    """TensorRT casts DOUBLE down with clamping; our deploy graphs never need it, so refuse it."""
    double = onnx.TensorProto.DOUBLE
    findings = [
        Finding(
            "blocker",
            t.name,
            "",
            "float64 initializer: TensorRT would cast it down to float32 with clamping; cast it in the export",
            "float64",
        )
        for t in graph.initializer
        if t.data_type == double
    ]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == double:
            findings.append(
                Finding("blocker", value.name, "", "float64 tensor (TensorRT clamps it to float32)", "float64")
            )
    return findings


def _check_layernorm(model: onnx.ModelProto) -> list[Finding]:
    ops = Counter(n.op_type for n in model.graph.node)
    if ops["LayerNormalization"]:
        return [
            Finding(
                "info",
                "",
                "LayerNormalization",
                f"{ops['LayerNormalization']} LayerNormalization ops (opset >= 17): parsed as single normalization "
                "layers, not the ReduceMean/Pow/Sqrt chain",
                "layernorm-fused",
            )
        ]
    if ops["ReduceMean"] >= 2 and ops["Pow"] and ops["Sqrt"]:
        return [
            Finding(
                "warning",
                "",
                "",
                "LayerNorm appears decomposed (ReduceMean/Pow/Sqrt): it can overflow in FP16; export with opset >= 17",
                "layernorm-decomposed",
            )
        ]
    return []


def _check_int64(graph: onnx.GraphProto) -> list[Finding]:
    int64 = onnx.TensorProto.INT64
    count = sum(t.data_type == int64 for t in graph.initializer)
    count += sum(v.type.tensor_type.elem_type == int64 for v in (*graph.value_info, *graph.input, *graph.output))
    if not count:
        return []
    return [
        Finding(
            "info",
            "",
            "",
            f"{count} INT64 tensors (shape constants, indices): TensorRT 10+ handles INT64 natively; "
            "nothing to do unless they carry image data",
            "int64",
        )
    ]


__all__ = ["check_tensorrt_readiness"]
