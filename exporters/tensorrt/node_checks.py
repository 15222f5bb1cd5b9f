"""Node-level TensorRT readiness rules: operator support, build-time constants, Q/DQ, restrictions.

Each rule reads one node (and the constants of its graph) against the support data of one
TensorRT major (:mod:`.support_table`); :mod:`.readiness` runs them over a whole graph next to
the graph-level checks. A call of a model-local function is checked through its body, because
TensorRT's parser inlines local functions (onnx-tensorrt 9.0 on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import numpy_helper

from .findings import Finding
from .support_table import SUPPORT_TABLE

DEFAULT_DOMAINS = {"", "ai.onnx"}
_RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial"}


# -- constants -----------------------------------------------------------------------------------
def constant_values(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
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


def constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Names computable at build time: initializers, Constants, and nodes fed only by those."""
    known = set(constant_values(graph))
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


@dataclass(frozen=True)
class Scope:
    """What a node is checked against: one major's support data and the constants visible where it stands.

    Attributes:
        table: ``SUPPORT_TABLE["majors"][major]``.
        major: the TensorRT major version.
        constants: tensors whose values are in the file (initializers, ``Constant`` outputs).
        constant_names: names computable at build time (constants and what only they feed).
        functions: the model-local functions, by ``(domain, name)``.
        shapes_of: outputs of whole-tensor ``Shape`` nodes. A Reshape to such a shape ("reshape Y
            to X's dimensions") is the pattern TensorRT's dynamic-shape guide builds from IShapeLayer
            + IShuffleLayer: its dimensions are known once the profile's are, so it needs no constant.
    """

    table: dict
    major: int
    constants: dict[str, onnx.TensorProto]
    constant_names: frozenset[str]
    functions: dict[tuple[str, str], onnx.FunctionProto]
    shapes_of: frozenset[str] = frozenset()

    @classmethod
    def of_model(cls, model: onnx.ModelProto, major: int) -> Scope:
        """The scope of the main graph of ``model`` for TensorRT ``major``."""
        return cls(
            table=SUPPORT_TABLE["majors"][major],
            major=major,
            constants=constant_values(model.graph),
            constant_names=frozenset(constant_tensors(model.graph)),
            functions={(f.domain, f.name): f for f in model.functions},
            shapes_of=frozenset(_whole_shapes(model.graph.node)),
        )

    def inside(self, body: onnx.FunctionProto) -> Scope:
        """The scope within a local function's body: its ``Constant`` nodes are constants too."""
        names = {o for n in body.node if n.op_type == "Constant" for o in n.output if o}
        return replace(
            self,
            constants=self.constants | _constant_node_values(body.node),
            constant_names=self.constant_names | names,
            shapes_of=self.shapes_of | _whole_shapes(body.node),
        )


def _whole_shapes(nodes) -> set[str]:
    """Outputs of ``Shape`` nodes that take the whole shape (no start/end slice)."""
    return {
        n.output[0]
        for n in nodes
        if n.op_type == "Shape" and n.output and not any(a.name in ("start", "end") for a in n.attribute)
    }


def check_call(
    node: onnx.NodeProto, index: int, scope: Scope, inside: tuple[tuple[str, str], ...] = ()
) -> list[Finding]:
    """Check a node; a call of a model-local function is checked through its body.

    The parser inlines local functions (onnx-tensorrt 9.0 on), so what matters is what they
    contain. ``Constant`` nodes inside a body count as constants; values computed from them do not,
    so a constant-input rule may warn where the inlined graph would fold.

    Args:
        node: the node (of the main graph or a function body).
        index: its position, named when the node has no name.
        scope: support data and constants where the node stands.
        inside: the functions being expanded, outermost first (a recursive call is refused).
    """
    key = (node.domain, node.op_type)
    if key not in scope.functions:
        return _check_node(node, index, scope)
    if key in inside:
        return [
            Finding("blocker", node.name or f"node {index}", node.op_type, "recursive local function", "custom-domain")
        ]
    findings: list[Finding] = []
    body = scope.functions[key]
    body_scope = scope.inside(body)
    for inner_index, inner in enumerate(body.node):
        for finding in check_call(inner, inner_index, body_scope, (*inside, key)):
            where = f"{node.name or node.op_type}/{finding.node}"
            findings.append(Finding(finding.severity, where, finding.op, finding.message, finding.code))
    return findings


def _check_node(node: onnx.NodeProto, index: int, scope: Scope) -> list[Finding]:
    table, major, constants = scope.table, scope.major, scope.constants
    name = node.name or f"node {index}"
    op = node.op_type
    findings: list[Finding] = []

    def add(severity: str, message: str, code: str) -> None:
        findings.append(Finding(severity, name, op, message, code))

    if node.domain not in DEFAULT_DOMAINS:
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
            if op == "Reshape" and i < len(node.input) and node.input[i] in scope.shapes_of:
                continue
            if i < len(node.input) and node.input[i] and node.input[i] not in scope.constant_names:
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


__all__ = ["DEFAULT_DOMAINS", "Scope", "check_call", "constant_tensors", "constant_values"]
