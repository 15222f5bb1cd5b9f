"""Will TensorRT's ONNX parser take this graph? Answered on the CPU, before any GPU is involved.

``trt.Builder`` needs a CUDA device, so without one the parser cannot even be tried (DESIGN.md
§5). This module checks what can be checked from the ONNX alone against a versioned copy of
NVIDIA's own support data: the opset range of each TensorRT major, the onnx-tensorrt operator
matrix with its restrictions, inputs that must be build-time constants, symmetric Q/DQ, no float64
and dynamic dimensions only on the batch axis. ``exporters.tensorrt.build_engine`` runs it first
so a build fails in seconds with node names instead of minutes into a GPU session.

The table is data, not logic: when NVIDIA publishes a new operators.md, update ``SUPPORT_TABLE``
(and its ``retrieved`` date) rather than the checks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

SEVERITIES = ("blocker", "warning", "info")

# Operators the onnx-tensorrt matrix lists as "N" (not supported). Everything listed "Y" is in
# SUPPORTED_OPS below; an op in neither list is unknown to the matrix and only warned about.
_UNSUPPORTED_10 = (
    "AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress "
    "ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool "
    "MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement "
    "QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase "
    "SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat "
    "StringNormalizer StringSplit TfIdfVectorizer Unique"
).split()

_SUPPORTED_10 = (
    "Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization "
    "BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh "
    "CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten "
    "Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater "
    "GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax "
    "Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log "
    "LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish "
    "Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear "
    "RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 "
    "ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu "
    "Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan "
    "Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus "
    "Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose "
    "Trilu Unsqueeze Upsample Where Xor"
).split()

_REDUCE_OPS = (
    "ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare"
).split()

#: Versioned support data. Sources (all read 2026-11):
#: - onnx-tensorrt ``docs/operators.md`` (the TensorRT 10.15 matrix: opset 9..24, operator support and
#:   restrictions), https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md;
#: - TensorRT 10.0 operators.md (10.0 parses opset 9..20, so opsets 21..24 need a newer 10.x);
#: - NVIDIA "ONNX Opset Guide" for TensorRT 11.x (minimum opset 9, maximum 25),
#:   https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html, and the
#:   TensorRT 11.5 release notes ("Added support for ONNX opset 25": 11.0-11.4 stop at 24);
#: - TensorRT 11.0 / 11.2 release notes (parser adds Swish; DFT via a cuFFT plugin), onnx-tensorrt
#:   Changelog (10.4: tensor ``axes`` for Pad; 10.14: Attention; 9.0: model-local functions);
#: - TensorRT 10.x -> 11.x migration guide (networks always strongly typed; FP16/INT8 flags removed).
SUPPORT_TABLE: dict = {
    "retrieved": "2026-11",
    "sources": [
        "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md (TensorRT 10.15 matrix)",
        "https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html",
        "https://github.com/NVIDIA/TensorRT/releases (11.0, 11.2, 11.5 release notes)",
        "https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html",
    ],
    "majors": {
        10: {
            "min_opset": 9,
            "max_opset": 24,  # 10.15
            "max_opset_oldest_release": 20,  # 10.0
            "supported": sorted(_SUPPORTED_10),
            "unsupported": sorted(_UNSUPPORTED_10),
            "strongly_typed_only": False,
        },
        11: {
            "min_opset": 9,
            "max_opset": 25,  # 11.5
            "max_opset_oldest_release": 24,  # 11.0 - 11.4
            "supported": sorted({*_SUPPORTED_10, "Swish", "DFT"}),
            "unsupported": sorted(set(_UNSUPPORTED_10) - {"DFT"}),
            "strongly_typed_only": True,
        },
    },
    # Operators the parser gained within a major: (major, minor) of the first release that parses
    # them (10.14 parser release notes: Attention; 11.0: Swish; 11.2: DFT via cuFFT). Older
    # releases of that major reject them, so they are warned about, not blocked.
    "added_in": {"Attention": (10, 14), "Swish": (11, 0), "DFT": (11, 2)},
    # Inputs (by index) that the parser needs as build-time constants. "blocker": the parser
    # rejects or we refuse to rely on it; "warning": parsed as shape tensors, but our deploy graphs
    # always fold them, so a non-constant one means the export went wrong.
    "constant_inputs": {
        "Pad": {"inputs": [1, 2, 3], "severity": "warning"},  # tensor pads/axes parse since 10.4 (Changelog)
        "CumSum": {"inputs": [1], "severity": "blocker"},
        "OneHot": {"inputs": [1], "severity": "blocker"},
        "Dropout": {"inputs": [2], "severity": "blocker"},
        "STFT": {"inputs": [1, 2], "severity": "blocker"},
        "Squeeze": {"inputs": [1], "severity": "blocker"},
        "Unsqueeze": {"inputs": [1], "severity": "blocker"},
        "QuantizeLinear": {"inputs": [1, 2], "severity": "blocker"},
        "DequantizeLinear": {"inputs": [1, 2], "severity": "blocker"},
        **{op: {"inputs": [1], "severity": "blocker"} for op in _REDUCE_OPS},
        "Reshape": {"inputs": [1], "severity": "warning"},
        "Slice": {"inputs": [1, 2, 3, 4], "severity": "warning"},
        "Resize": {"inputs": [1, 2, 3], "severity": "warning"},
        "Split": {"inputs": [1], "severity": "warning"},
        "Expand": {"inputs": [1], "severity": "warning"},
        "Tile": {"inputs": [1], "severity": "warning"},
    },
}

_RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial"}
_DEFAULT_DOMAINS = {"", "ai.onnx"}


@dataclass(frozen=True)
class Finding:
    """One readiness finding.

    Attributes:
        severity: ``"blocker"`` (the build will fail or be wrong), ``"warning"`` (it may build but
            deserves a look) or ``"info"``.
        node: node name (or tensor / graph element name; ``""`` for whole-graph findings).
        op: the node's op type (``""`` for graph-level findings).
        message: what is wrong and what to do about it.
        code: a stable short identifier (``"unsupported-op"``, ``"float64"``...) for tests and tools.
    """

    severity: str
    node: str
    op: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        if self.node and self.op:
            where = f"{self.node} ({self.op})"
        else:
            where = self.node or self.op or "graph"
        return f"[{self.severity}] {where}: {self.message}"


def has_blockers(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "blocker" for f in findings)


def format_findings(findings: Iterable[Finding]) -> str:
    """One line per finding, blockers first: what ``acmix-deploy inspect --tensorrt`` prints."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return "\n".join(str(f) for f in sorted(findings, key=lambda f: order[f.severity]))


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
    table = SUPPORT_TABLE["majors"][trt_major]
    graph = model.graph
    findings: list[Finding] = []
    findings += _check_opset(model, table, trt_major)
    constants = _constant_values(graph)
    constant_names = _constant_tensors(graph)
    findings += _check_inputs(graph)
    findings += _check_float64(graph)
    functions = {(f.domain, f.name): f for f in model.functions}
    for index, node in enumerate(graph.node):
        findings += _check_call(node, index, table, trt_major, constants, constant_names, functions, ())
    findings += _check_layernorm(model)
    findings += _check_int64(graph)
    return findings


# -- graph-level checks --------------------------------------------------------------------------
def _opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
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


# -- constants -----------------------------------------------------------------------------------
def _constant_values(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Tensors whose values are in the file: initializers and ``Constant`` node outputs."""
    return {t.name: t for t in graph.initializer} | _constant_node_values(graph.node)


def _constant_node_values(nodes: Iterable[onnx.NodeProto]) -> dict[str, onnx.TensorProto]:
    """The tensors ``Constant`` nodes hold in their ``value`` attribute, by output name."""
    values = {}
    for node in nodes:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    values[node.output[0]] = attr.t
    return values


def _constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Names computable at build time: initializers, Constants, and nodes fed only by those."""
    known = set(_constant_values(graph))
    for node in graph.node:  # graphs are topologically sorted (onnx.checker requires it)
        if node.op_type in _RANDOM_OPS or node.op_type in ("If", "Loop", "Scan"):
            continue
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or (inputs and all(i in known for i in inputs)):
            known.update(o for o in node.output if o)
    return known


def _array(tensor: onnx.TensorProto) -> np.ndarray | None:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 - malformed tensors are reported by onnx.checker, not here
        return None


# -- node-level checks ---------------------------------------------------------------------------
def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _check_call(
    node: onnx.NodeProto,
    index: int,
    table: dict,
    major: int,
    constants: dict[str, onnx.TensorProto],
    constant_names: set[str],
    functions: dict[tuple[str, str], onnx.FunctionProto],
    inside: tuple[tuple[str, str], ...],
) -> list[Finding]:
    """Check a node; a call of a model-local function is checked through its body.

    The parser inlines local functions (onnx-tensorrt 9.0 on), so what matters is what they
    contain. ``Constant`` nodes inside a body count as constants; values computed from them do not,
    so a constant-input rule may warn where the inlined graph would fold.
    """
    key = (node.domain, node.op_type)
    if key not in functions:
        return _check_node(node, index, table, major, constants, constant_names)
    if key in inside:
        return [
            Finding("blocker", node.name or f"node {index}", node.op_type, "recursive local function", "custom-domain")
        ]
    findings: list[Finding] = []
    body = functions[key]
    local_constants = constants | _constant_node_values(body.node)
    local_names = constant_names | {o for n in body.node if n.op_type == "Constant" for o in n.output if o}
    for inner_index, inner in enumerate(body.node):
        for finding in _check_call(
            inner, inner_index, table, major, local_constants, local_names, functions, (*inside, key)
        ):
            where = f"{node.name or node.op_type}/{finding.node}"
            findings.append(Finding(finding.severity, where, finding.op, finding.message, finding.code))
    return findings


def _check_node(
    node: onnx.NodeProto,
    index: int,
    table: dict,
    major: int,
    constants: dict[str, onnx.TensorProto],
    constant_names: set[str],
) -> list[Finding]:
    name = node.name or f"node {index}"
    op = node.op_type
    findings: list[Finding] = []

    def add(severity: str, message: str, code: str) -> None:
        findings.append(Finding(severity, name, op, message, code))

    if node.domain not in _DEFAULT_DOMAINS:
        add("blocker", f"custom-domain op ({node.domain}): needs a TensorRT plugin", "custom-domain")
        return findings
    if op in table["unsupported"]:
        add("blocker", f"{op} is not supported by the TensorRT {major} ONNX parser", "unsupported-op")
        return findings
    if op not in table["supported"]:
        add("warning", f"{op} is not in the TensorRT {major} operator table; it may not parse", "unknown-op")
    added = SUPPORT_TABLE["added_in"].get(op)
    if added and added[0] == major and added[1] > 0:
        add("warning", f"{op} parses from TensorRT {added[0]}.{added[1]} on; older {major}.x reject it", "op-recent")

    rule = SUPPORT_TABLE["constant_inputs"].get(op)
    if rule:
        for i in rule["inputs"]:
            if i < len(node.input) and node.input[i] and node.input[i] not in constant_names:
                add(
                    rule["severity"],
                    f"input {i} ({node.input[i]}) must be a build-time constant (initializer)",
                    "non-constant-input",
                )

    if op == "Cast" and _attr(node, "to") == onnx.TensorProto.DOUBLE:
        add("blocker", "casts to float64", "float64")
    if op == "Constant":
        value = _attr(node, "value")
        if isinstance(value, onnx.TensorProto) and value.data_type == onnx.TensorProto.DOUBLE:
            add("blocker", "float64 constant", "float64")
    if op in ("QuantizeLinear", "DequantizeLinear"):
        findings += _check_qdq(node, name, constants)
    if op == "LayerNormalization" and len([o for o in node.output if o]) > 1:
        add("blocker", "only the first output (Y) of LayerNormalization is supported", "restriction")
    if op == "MaxPool" and len([o for o in node.output if o]) > 1:
        add("blocker", "the Indices output of MaxPool is not supported", "restriction")
    if op in ("MaxPool", "AveragePool", "LpPool"):
        dilations = _attr(node, "dilations")
        if dilations and any(d != 1 for d in dilations):
            add("blocker", "pooling dilations must be empty or all ones", "restriction")
    if op == "TopK" and _attr(node, "sorted", 1) != 1:
        add("blocker", "TopK needs sorted=1", "restriction")
    if op == "TopK" and len(node.input) > 1 and node.input[1] in constants:
        k = _array(constants[node.input[1]])
        if k is not None and k.size and int(k.ravel()[0]) > 3840:
            add("blocker", f"TopK K={int(k.ravel()[0])}: TensorRT needs K <= 3840", "restriction")
    if op == "Dropout" and len(node.input) > 2 and node.input[2] in constants:
        training = _array(constants[node.input[2]])
        if training is not None and training.size and bool(training.ravel()[0]):
            add("blocker", "Dropout with training_mode=True: TensorRT supports inference mode only", "restriction")
    if op == "Squeeze" and not (len(node.input) > 1 and node.input[1]) and _attr(node, "axes") is None:
        add(
            "warning",
            "Squeeze without axes (squeeze every size-1 dim) is supported from TensorRT 11.5 on; name the axes",
            "restriction",
        )
    if op == "ScatterND" and (_attr(node, "reduction", b"none") or b"none") not in (b"none", "none"):
        add("blocker", "ScatterND reduction other than 'none' is not supported", "restriction")
    if op == "LSTM" and (_attr(node, "layout", 0) or _attr(node, "input_forget", 0)):
        add("blocker", "LSTM needs layout=0 and input_forget=0", "restriction")
    if op == "Resize":
        findings += _check_resize(node, name)
    return findings


def _check_qdq(node: onnx.NodeProto, name: str, constants: dict[str, onnx.TensorProto]) -> list[Finding]:
    """TensorRT quantisation is symmetric: the zero point must be 0 (and INT8/FP8, not UINT8)."""
    op = node.op_type
    if len(node.input) < 3 or not node.input[2]:
        return []  # no zero point: 0 by definition
    zp = constants.get(node.input[2])
    if zp is None:
        return []  # reported as a non-constant input already
    if zp.data_type == onnx.TensorProto.UINT8:
        return [Finding("blocker", name, op, "UINT8 zero point: TensorRT quantises to signed INT8", "qdq-asymmetric")]
    values = _array(zp)
    if values is None:
        return [Finding("warning", name, op, "zero point stored externally; not checked", "qdq-unchecked")]
    if np.any(values != 0):
        return [
            Finding(
                "blocker",
                name,
                op,
                f"zero point {values.ravel()[:4].tolist()} is not 0: TensorRT supports symmetric quantisation only",
                "qdq-asymmetric",
            )
        ]
    return []


def _check_resize(node: onnx.NodeProto, name: str) -> list[Finding]:
    findings = []
    mode = _attr(node, "mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("nearest", "linear"):
        findings.append(
            Finding("blocker", name, "Resize", f"mode {mode!r} unsupported (nearest, linear)", "restriction")
        )
    ctm = _attr(node, "coordinate_transformation_mode", b"half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    if ctm not in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"):
        findings.append(
            Finding("blocker", name, "Resize", f"coordinate_transformation_mode {ctm!r} unsupported", "restriction")
        )
    if _attr(node, "antialias", 0):
        findings.append(Finding("blocker", name, "Resize", "antialiasing is not supported", "restriction"))
    policy = _attr(node, "keep_aspect_ratio_policy", b"stretch")
    policy = policy.decode() if isinstance(policy, bytes) else policy
    if policy != "stretch":
        findings.append(
            Finding(
                "blocker", name, "Resize", f"keep_aspect_ratio_policy {policy!r} unsupported (stretch)", "restriction"
            )
        )
    return findings


__all__ = ["SUPPORT_TABLE", "Finding", "check_tensorrt_readiness", "format_findings", "has_blockers"]
