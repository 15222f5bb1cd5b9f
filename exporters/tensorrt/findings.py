"""What the TensorRT readiness check reports: one :class:`Finding` per problem, and how to show them.

A quantized graph repeats one problem on every Q/DQ node (hundreds of lines for a small model), so
they are shown grouped by kind with counts (:func:`group_findings`), and each kind with what to do
about it (:func:`advice`): for an ONNX Runtime CPU int8 artifact, the TensorRT form to export instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SEVERITIES = ("blocker", "warning", "info")


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
    """Whether any finding stops the build."""
    return any(f.severity == "blocker" for f in findings)


# ONNX Runtime's own integer operators: what int8 "cpu" (QOperator) and "cpu-dynamic" exports are made of.
ORT_INT8_OPS = frozenset(
    {"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearSigmoid",
     "QLinearConcat", "QLinearSoftmax", "QLinearLeakyRelu", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
     "DynamicQuantizeMatMul", "QGemm", "QAttention"}
)  # fmt: skip
ORT_INT8_ADVICE = (
    "an int8 artifact for ONNX Runtime CPU (U8 activations or ORT's integer operators): TensorRT takes only "
    "symmetric S8 Q/DQ, so make that form: acmix-deploy export CHECKPOINT --precision int8 --int8-target tensorrt "
    "--calib DIR (or acmix-deploy convert FP32.onnx --precision int8 --int8-target tensorrt --calib DIR)"
)
_ADVICE = {
    "unsupported-op": "re-export without these ops, or give TensorRT a plugin for them",
    "custom-domain": "register a TensorRT plugin for the custom op, or re-export without it",
    "dynamic-dims": "export with a fixed image size (--img-size); only the batch axis may be dynamic",
    "float64": "cast float64 tensors to float32 in the export",
    "non-constant-input": "fold these inputs into initializers (constant folding) before building",
}


def advice(finding: Finding) -> str | None:
    """What to do about ``finding``, when the finding itself does not already say it."""
    if finding.code == "qdq-asymmetric" or finding.op in ORT_INT8_OPS:
        return ORT_INT8_ADVICE
    return _ADVICE.get(finding.code) if finding.severity != "info" else None


@dataclass(frozen=True)
class FindingGroup:
    """Findings of one kind (severity, code, op), counted: a QDQ graph repeats one problem per node."""

    severity: str
    code: str
    op: str
    message: str  # the first finding's
    nodes: tuple[str, ...]
    advice: str | None

    def to_dict(self) -> dict:
        return {
            "severity": self.severity, "code": self.code, "op": self.op, "count": len(self.nodes),
            "message": self.message, "nodes": list(self.nodes), "advice": self.advice,
        }  # fmt: skip


def group_findings(findings: Iterable[Finding]) -> list[FindingGroup]:
    """Findings grouped by (severity, code, op), blockers first, each kind in graph order of its first finding."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.severity, f.code, f.op), []).append(f)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    made = [
        FindingGroup(sev, code, op, items[0].message, tuple(f.node for f in items), advice(items[0]))
        for (sev, code, op), items in groups.items()
    ]
    return sorted(made, key=lambda g: order[g.severity])  # stable: graph order within a severity


def format_findings(findings: Iterable[Finding], shown_nodes: int = 3) -> str:
    """What ``acmix-deploy inspect --tensorrt`` prints: one line per kind of finding with its count, blockers
    first, a few of its nodes, then what to do (each piece of advice once)."""
    groups = group_findings(findings)
    lines = []
    for g in groups:
        if len(g.nodes) == 1:
            lines.append(str(Finding(g.severity, g.nodes[0], g.op, g.message, g.code)))
            continue
        what = f"{g.op} nodes" if g.op else "findings"
        lines.append(f"[{g.severity}] {len(g.nodes)} {what} ({g.code}): {g.message}")
        named = [n for n in g.nodes if n][:shown_nodes]
        if named:
            more = len(g.nodes) - len(named)
            lines.append(f"    e.g. {', '.join(named)}" + (f" (+{more} more)" if more else ""))
    todo = list(dict.fromkeys(g.advice for g in groups if g.advice))
    if todo:
        lines.append("what to do:")
        lines += [f"  - {item}" for item in todo]
    return "\n".join(lines)


__all__ = ["ORT_INT8_ADVICE", "SEVERITIES", "Finding", "FindingGroup", "advice", "format_findings", "group_findings",
           "has_blockers"]  # fmt: skip
