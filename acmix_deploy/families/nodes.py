"""Which ACmix stage, block and branch a deploy-graph node belongs to: the names ``profile`` prints.

The exporter writes each module's scope into the node names (``/blocks/blocks.3/acmix/MatMul``):
the index into the deploy model's ``blocks`` gives the block, named as the official model names
it (the family's ``block_names``: ``layer2.0``, ``layers.1.blocks.3``); the family's
``classify_kernel`` gives the branch (attention, convolution, projection, ...); the family's
``stage_name`` the stage (``layer2``, ``layers.1``). Scoped nodes outside the blocks (stem,
pooling, classifier) are ``stem/head``; unscoped ones (layout changes a runtime or a graph pass
inserts) are ``layout``. One mapping for the per-layer profile (:mod:`acmix_deploy.profiling.layers`),
the precision sensitivity pass and ``export --keep-fp32`` (:mod:`acmix_deploy.exporters.precision`).
Plain strings only: no ONNX here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

BLOCK_SCOPE = re.compile(r"^/blocks/blocks\.(\d+)/")
STEM_HEAD, LAYOUT = "stem/head", "layout"
BRANCHES = ("attention", "convolution", "projection", "mlp", "norm", "other", LAYOUT)


def _family(name: str | None):
    from . import family_names, get_family

    return get_family(name) if name in family_names() else None


def block_names(family: str | None, hparams: Mapping) -> list[str]:
    """Official names of the deploy model's ``blocks`` children, in order (none for a generic model)."""
    spec = _family(family)
    return spec.block_names(hparams) if spec else []


def node_block(node: str, names: Sequence[str]) -> str:
    """The block of a node named ``node`` (``names``: :func:`block_names`), ``stem/head`` or ``layout``."""
    match = BLOCK_SCOPE.match(node)
    if match and int(match.group(1)) < len(names):
        return names[int(match.group(1))]
    return STEM_HEAD if node.startswith("/") else LAYOUT


def node_branch(family: str | None, node: str, op: str, group: int = 1) -> str:
    """The ACmix branch of a node (``layout`` when unscoped, ``other`` for a generic model)."""
    if not node.startswith("/"):
        return LAYOUT
    spec = _family(family)
    return spec.classify_kernel(node, op, group) if spec else "other"


def stage_name(family: str | None, block: str) -> str:
    """The stage holding ``block`` (``layer2.0`` -> ``layer2``); ``stem/head`` is its own stage."""
    spec = _family(family)
    if spec is None or block in (STEM_HEAD, LAYOUT):
        return block
    return spec.stage_name(block)


def unit_names(family: str | None, hparams: Mapping) -> list[str]:
    """Every stage, block and ``<block>.<branch>`` name of a model, in model order.

    These are the names ``export --keep-fp32`` accepts before any graph exists (a name may still
    match no node of a given graph, e.g. a branch the family does not have).
    """
    blocks = block_names(family, hparams)
    names = [STEM_HEAD]
    for block in blocks:
        stage = stage_name(family, block)
        if stage not in names:
            names.append(stage)
        names.append(block)
        names += [f"{block}.{branch}" for branch in BRANCHES if branch != LAYOUT]
    return names


__all__ = [
    "BLOCK_SCOPE",
    "BRANCHES",
    "LAYOUT",
    "STEM_HEAD",
    "block_names",
    "node_block",
    "node_branch",
    "stage_name",
    "unit_names",
]
