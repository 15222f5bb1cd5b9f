"""The int8 sensitivity pass: which few nodes to keep in float so int8 stays close to fp32.

Quantizing everything usually costs most of its error in a handful of places: the first
convolution (raw pixels, wide range), the classifier (its outputs are the logits) and, in Swin,
the attention MatMuls (softmax inputs and outputs). :func:`sensitivity_candidates` finds those
groups in a graph; :func:`search_sensitive_groups` tries keeping each in float and keeps the
ones that pay, by one score measured on the calibration images (:class:`QuantizationRun`).
The search only decides; quantizing and scoring is the caller's (:mod:`.int8_static`).
For a person choosing what to keep in fp32, by ACmix stage, block or branch, see :mod:`.block_sensitivity`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import onnx

from .common import QUANT_OPS

SENSITIVITY_GAIN = 0.25  # keep a node group in float only if that cuts the logit error by >= 25%
_PASSTHROUGH = frozenset({"Add", "Reshape", "Transpose", "Mul", "Div", "Squeeze", "Unsqueeze"})
_MAX_HOPS = 6  # how far from a Softmax an attention MatMul may sit (reshapes, transposes, scaling)


@dataclass(frozen=True)
class QuantizationRun:
    """One quantization of the graph and how close it stays to fp32 on the calibration images."""

    model: onnx.ModelProto
    excluded: tuple[str, ...]  # node names kept in float
    top1_agreement: float  # share of calibration images whose top-1 class matches fp32's
    logit_nmse: float  # mean squared logit error over the mean squared fp32 logit

    @property
    def score(self) -> tuple[float, float]:
        """Higher is better: agreement first, then the smaller logit error."""
        return (self.top1_agreement, -self.logit_nmse)

    def record(self) -> dict:
        """The run as report data (the model left out)."""
        return {
            "excluded": list(self.excluded),
            "calib_top1_agreement": self.top1_agreement,
            "calib_logit_nmse": self.logit_nmse,
        }


Quantize = Callable[[Sequence[str]], QuantizationRun]
"""Quantize the graph keeping the named nodes in float, and score the result."""


def _attention_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls feeding a Softmax (scores) or fed by one (weighted values), through data movement only."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: list[str] = []
    for sm in (n for n in model.graph.node if n.op_type == "Softmax"):
        node, hops = producer.get(sm.input[0]), 0
        while node is not None and node.op_type in _PASSTHROUGH and hops < _MAX_HOPS:
            node, hops = producer.get(node.input[0]), hops + 1
        if node is not None and node.op_type == "MatMul":
            found.append(node.name)
        frontier, hops = list(consumers.get(sm.output[0], [])), 0
        while frontier and hops < _MAX_HOPS:
            nxt = []
            for c in frontier:
                if c.op_type == "MatMul":
                    found.append(c.name)
                elif c.op_type in _PASSTHROUGH:
                    nxt.extend(consumers.get(c.output[0], []))
            frontier, hops = nxt, hops + 1
    return found


def sensitivity_candidates(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Groups of node names commonly hurt by quantization: first conv, classifier, attention MatMuls."""
    nodes = [n for n in model.graph.node if n.op_type in QUANT_OPS]
    groups = {
        "first_conv": [nodes[0].name] if nodes and nodes[0].op_type == "Conv" else [],
        "classifier": [nodes[-1].name] if nodes and nodes[-1].op_type in ("Gemm", "MatMul") else [],
        "attention_matmuls": sorted(set(_attention_matmuls(model))),
    }
    return {k: v for k, v in groups.items() if v}


def _helps(run: QuantizationRun, baseline: QuantizationRun) -> bool:
    """Keeps the baseline's agreement and cuts its logit error by at least SENSITIVITY_GAIN."""
    return run.top1_agreement >= baseline.top1_agreement and run.logit_nmse <= (1 - SENSITIVITY_GAIN) * (
        baseline.logit_nmse
    )


def search_sensitive_groups(
    quantize: Quantize, baseline: QuantizationRun, groups: dict[str, list[str]], budget: int
) -> tuple[QuantizationRun, dict]:
    """Try keeping each candidate group in float; return the best run and what the search saw.

    The first ``budget`` groups are tried one at a time on top of ``baseline.excluded``. A group
    helps when it keeps the baseline's top-1 agreement and cuts the logit error by
    :data:`SENSITIVITY_GAIN` or more. When two or more groups help, their union is tried as well:
    one run beyond the budget, whatever the budget, since the union is the likeliest best result
    once several groups pay. The best-scoring run wins (the baseline when nothing beats it).

    Returns:
        The best run, and the search as report data: ``groups``, the logit error per try
        (``nmse``, keyed by group name, ``"none"`` for the baseline, ``"a+b"`` for a union),
        the ``helpful`` groups, and the node names ``kept_float`` beyond the baseline's.
    """
    base = list(baseline.excluded)
    search: dict = {"ran": True, "groups": groups, "nmse": {"none": baseline.logit_nmse}}
    best, helpful = baseline, []
    for name, group in list(groups.items())[:budget]:
        run = quantize(base + group)
        search["nmse"][name] = run.logit_nmse
        if _helps(run, baseline):
            helpful.append(name)
            if run.score > best.score:
                best = run
    if len(helpful) > 1:
        run = quantize(base + [n for g in helpful for n in groups[g]])
        search["nmse"]["+".join(helpful)] = run.logit_nmse
        if run.score > best.score:
            best = run
    search["helpful"] = helpful
    search["kept_float"] = [n for n in best.excluded if n not in base]
    return best, search
