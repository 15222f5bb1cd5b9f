"""What the TensorRT readiness check reports: one :class:`Finding` per problem, and how to show them."""

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


def format_findings(findings: Iterable[Finding]) -> str:
    """One line per finding, blockers first: what ``acmix-deploy inspect --tensorrt`` prints."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return "\n".join(str(f) for f in sorted(findings, key=lambda f: order[f.severity]))


__all__ = ["SEVERITIES", "Finding", "format_findings", "has_blockers"]
