"""ACmix stages, blocks and branches as sets of ONNX nodes: what ``--keep-fp32`` and the sensitivity pass name.

A *unit* is a stage (``layer2``), a block (``layer2.0``, ``stem/head``) or a branch of a block
(``layer2.0.attention``), named as ``acmix-deploy profile`` prints them: the node-to-block mapping
is :mod:`acmix_deploy.families.nodes`, shared with the profiler. :func:`graph_units` lists the
units of a graph with their nodes, :func:`keep_fp32_nodes` turns the names a user gave into the
nodes to keep in fp32 (refusing unknown names in one line that lists the valid ones),
:func:`parse_keep_fp32` / :func:`keep_list_text` read and write the keep list (``NAMES`` or ``@file``),
and :func:`parse_levels` checks the levels a ranking asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from acmix_deploy.families import nodes as scopes
from acmix_deploy.manifest import Manifest

from .common import PrecisionError

LEVELS = ("stage", "block", "branch")
MAX_KEEP_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Unit:
    """One stage, block or branch of a graph and the names of its nodes (graph order)."""

    name: str
    kind: str  # one of LEVELS
    nodes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "nodes": len(self.nodes)}


def parse_levels(levels: str | Iterable[str]) -> tuple[str, ...]:
    """``"stage,block"`` or ``("stage", "block")`` -> the levels, checked: the one check, CLI and library.

    Raises:
        PrecisionError: no level, or one that is not in :data:`LEVELS` (one line naming them).
    """
    try:
        items = levels.split(",") if isinstance(levels, str) else [str(v) for v in levels]
    except TypeError:
        items = [repr(levels)]
    chosen = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    unknown = [v for v in chosen if v not in LEVELS]
    if not chosen or unknown:
        from acmix_deploy.text import safe_text

        problem = f"unknown level(s) {safe_text(', '.join(map(repr, unknown)), 80)}" if unknown else "no level given"
        raise PrecisionError(f"{problem}; choose one or more of {', '.join(LEVELS)} (a list, or comma-separated)")
    return chosen


def graph_units(
    model: onnx.ModelProto, manifest: Manifest, levels: Iterable[str] = LEVELS, *, distinct: bool = True
) -> list[Unit]:
    """The units of ``model`` in model order: each stage, then its blocks, each followed by its branches.

    ``stem/head`` is a block (and its own stage, not listed twice). With ``distinct`` a stage of one
    block and the one branch of a block are left out (the same nodes as that block: a ranking would
    try them twice); without, every name is listed (what ``--keep-fp32`` accepts). Unscoped nodes
    (``layout``) belong to no unit.
    """
    wanted = set(parse_levels(levels))
    names = scopes.block_names(manifest.family, manifest.hparams)
    stages: dict[str, dict[str, dict[str, list[str]]]] = {}  # stage -> block -> branch -> nodes
    for node in model.graph.node:
        block = scopes.node_block(node.name, names)
        if block == scopes.LAYOUT:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        branch = scopes.node_branch(manifest.family, node.name, node.op_type, group)
        stage = scopes.stage_name(manifest.family, block)
        stages.setdefault(stage, {}).setdefault(block, {}).setdefault(branch, []).append(node.name)
    order = {name: i for i, name in enumerate([scopes.STEM_HEAD, *names])}
    units: list[Unit] = []
    for stage, blocks in sorted(stages.items(), key=lambda kv: min(order.get(b, len(order)) for b in kv[1])):
        if "stage" in wanted and (len(blocks) > 1 or not distinct) and stage not in blocks:
            units.append(Unit(stage, "stage", tuple(n for b in blocks.values() for ns in b.values() for n in ns)))
        for block, branches in sorted(blocks.items(), key=lambda kv: order.get(kv[0], len(order))):
            if "block" in wanted or (len(blocks) == 1 and "stage" in wanted and distinct):
                units.append(Unit(block, "block", tuple(n for ns in branches.values() for n in ns)))
            if "branch" in wanted and (len(branches) > 1 or not distinct) and block != scopes.STEM_HEAD:
                units += [Unit(f"{block}.{br}", "branch", tuple(ns)) for br, ns in branches.items()]
    return units


def describe_valid(units: Sequence[Unit]) -> str:
    """The valid names of ``units`` on one line: stages and blocks in full, branches as a pattern."""
    plain = [u.name for u in units if u.kind != "branch"]
    return _valid_text(plain, {u.name.rsplit(".", 1)[1] for u in units if u.kind == "branch"})


def _valid_text(plain: Sequence[str], branches: Iterable[str]) -> str:
    """``plain`` names in full, then the branch names as one ``<block>.{...}`` pattern."""
    shown = sorted(set(branches))
    return ", ".join(plain) + (f", and <block>.{{{','.join(shown)}}}" if shown else "")


def _unknown_names(unknown: Sequence[str], valid: str) -> str:
    """The one-line refusal of ``--keep-fp32`` names that are no unit, with the valid ones."""
    return f"unknown --keep-fp32 name(s) {', '.join(map(repr, unknown))}; valid: {valid}"


def keep_fp32_nodes(model: onnx.ModelProto, manifest: Manifest, names: Sequence[str]) -> list[str]:
    """The nodes of ``model`` in the named stages/blocks/branches (graph order, no duplicates).

    Raises:
        PrecisionError: a name that is no unit of this graph (the message lists the valid names).
    """
    units = {u.name: u for u in graph_units(model, manifest, distinct=False)}
    unknown = [n for n in names if n not in units]
    if unknown:
        raise PrecisionError(_unknown_names(unknown, describe_valid(graph_units(model, manifest))))
    chosen = {n for name in names for n in units[name].nodes}
    return [n.name for n in model.graph.node if n.name in chosen]


def keep_names_problem(family: str | None, hparams: dict, names: Sequence[str]) -> str | None:
    """Why ``names`` cannot be kept in fp32 in a model of this family and shape (before any graph exists).

    One line listing the valid names, or None when every name is one (a name may still match no
    node of a graph: :func:`keep_fp32_nodes` checks that).
    """
    valid = scopes.unit_names(family, hparams)
    unknown = [n for n in names if n not in set(valid)]
    if not unknown:
        return None
    branches = {n.rsplit(".", 1)[1] for n in valid if n.rsplit(".", 1)[-1] in scopes.BRANCHES}
    plain = [n for n in valid if n.rsplit(".", 1)[-1] not in scopes.BRANCHES]
    return _unknown_names(unknown, _valid_text(plain, branches))


def parse_keep_fp32(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"layer1.0,stem/head"``, ``"@keep.txt"`` (one name a line, ``#`` comments) or a list -> names.

    Raises:
        PrecisionError: the ``@file`` cannot be read.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        items = list(text)
    elif text.startswith("@"):
        from acmix_deploy.fileio import read_bounded_text
        from acmix_deploy.text import safe_text

        path = Path(text[1:])
        body = read_bounded_text(
            path, "keep-fp32 list", MAX_KEEP_FILE_BYTES, error=PrecisionError, shown=safe_text(str(path))
        )
        items = [line.split("#", 1)[0] for line in body.splitlines()]
    else:
        items = text.split(",")
    return tuple(dict.fromkeys(name.strip() for name in items if name.strip()))


def keep_list_text(names: Sequence[str], header: Sequence[str] = ()) -> str:
    """The keep list as :func:`parse_keep_fp32` reads it back: ``#`` header lines, then one name a line."""
    return "".join(f"# {line}\n" for line in header) + "".join(f"{name}\n" for name in names)


__all__ = [
    "LEVELS",
    "Unit",
    "describe_valid",
    "graph_units",
    "keep_fp32_nodes",
    "keep_list_text",
    "keep_names_problem",
    "parse_keep_fp32",
    "parse_levels",
]
