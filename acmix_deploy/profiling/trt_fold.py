"""TensorRT layer times folded onto the model's blocks and ACmix branches, through the engine inspector.

TensorRT fuses ONNX nodes into layers, so a layer time (``IProfiler.report_layer_time``) belongs to
every node the layer took in. The engine inspector lists them: built with
``ProfilingVerbosity.DETAILED``, ``EngineInspector.get_engine_information(JSON)`` gives
``{"Layers": [{"Name": ..., "LayerType": ..., "Metadata": "[ONNX Layer: /a/Conv]\\x1f[ONNX Layer:
/a/Relu]", "Groups": ...}, ...]}`` (the documented JSON; TensorRT 11 renamed the engine's I/O list,
not the layers). Each ONNX node name carries the module scope our exporter wrote
(``/blocks/blocks.3/acmix/...``), which gives the block; the model family classifies the node
into a branch (``ModelFamily.classify_kernel``: attention, convolution, projection, ...), as the
ONNX Runtime profile does (:mod:`.layers`).

A layer whose nodes fall into one block and one branch is attributed to them. A fused layer whose
nodes span branches (or blocks) is not guessed apart: its time is reported under the combined
label (``attention+convolution``) and listed in ``fused``. Layers with no ONNX node (reformatting
copies TensorRT inserts) are ``layout``. Without the inspector's node lists (an engine built
without detailed profiling lists names only) the fused layer name itself, ``a + b + c``, is split.

Plain data: no TensorRT here; the runner supplies the times and the inspector's JSON.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from ..families import family_names, get_family
from ..families.nodes import BLOCK_SCOPE, LAYOUT
from ..families.nodes import STEM_HEAD as STEM

ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


@dataclass(frozen=True)
class InspectedLayer:
    """What the inspector says about one engine layer: the ONNX nodes fused into it, its conv groups."""

    name: str
    nodes: tuple[str, ...]
    groups: int | None = None


def read_inspector_layers(info: str | Mapping) -> dict[str, InspectedLayer]:
    """``{layer name: InspectedLayer}`` from the inspector's engine information (JSON text or parsed).

    Unreadable information gives ``{}`` (layer names are then split on ``" + "``).
    """
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except json.JSONDecodeError:
            return {}
    layers = info.get("Layers", []) if isinstance(info, Mapping) else []
    found = {}
    for entry in layers if isinstance(layers, list) else []:
        if isinstance(entry, str):  # LAYER_NAMES_ONLY verbosity: names only
            found[entry] = InspectedLayer(entry, nodes_from_name(entry))
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Name"), str):
            continue
        name = entry["Name"]
        metadata = entry.get("Metadata")
        nodes = tuple(ONNX_LAYER.findall(metadata)) if isinstance(metadata, str) else ()
        groups = entry.get("Groups")
        found[name] = InspectedLayer(name, nodes or nodes_from_name(name), groups if isinstance(groups, int) else None)
    return found


def nodes_from_name(layer: str) -> tuple[str, ...]:
    """The ONNX node names in a fused layer's name (``"/a/Conv + /a/Relu"``); none for TensorRT's own layers."""
    return tuple(part.strip() for part in layer.split(" + ") if part.strip().startswith("/"))


def op_of(node: str) -> str:
    """The operator an exported node name ends with: ``/blocks/blocks.0/acmix/Conv_2`` -> ``Conv``."""
    return re.sub(r"_\d+$", "", node.rsplit("/", 1)[-1])


@dataclass
class FoldedProfile:
    """Layer time per block and branch; fused layers spanning branches or blocks listed as they are."""

    total_ms: float
    blocks: dict[str, dict[str, float]] = field(default_factory=dict)  # block -> branch -> ms
    branches: dict[str, float] = field(default_factory=dict)
    fused: list[dict] = field(default_factory=list)  # {"name", "ms", "blocks", "branches"}
    layers: list[dict] = field(default_factory=list)  # {"name", "ms", "block", "branch", "nodes"}, slowest first

    def to_dict(self) -> dict:
        return asdict(self)


def fold_layer_times(
    times: Mapping[str, float],
    inspector: str | Mapping | None,
    family: str | None,
    hparams: Mapping,
) -> FoldedProfile:
    """Fold ``{layer: ms}`` onto blocks and branches using the inspector's node lists.

    Args:
        times: mean milliseconds per engine layer (``TensorRTRunner.layer_times()``).
        inspector: ``get_engine_information(LayerInformationFormat.JSON)`` (or ``None``).
        family: the manifest's model family; an unknown one gets blocks ``stem/head`` only and
            branch ``other``.
        hparams: the manifest's hyperparameters (block names).
    """
    known = family in family_names() if family else False
    spec = get_family(family) if known else None
    names: Sequence[str] = spec.block_names(hparams) if spec else []
    inspected = read_inspector_layers(inspector) if inspector is not None else {}
    blocks: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    branches: dict[str, float] = defaultdict(float)
    fused, layers = [], []
    for name, ms in times.items():
        layer = inspected.get(name) or InspectedLayer(name, nodes_from_name(name))
        node_blocks = sorted({_block(node, names) for node in layer.nodes}, key=_order(names))
        convs = [n for n in layer.nodes if op_of(n) == "Conv"]
        group = layer.groups if layer.groups is not None and len(convs) == 1 else 1
        node_branches = sorted({spec.classify_kernel(n, op_of(n), group) if spec else "other" for n in layer.nodes})
        block = " + ".join(node_blocks) or LAYOUT
        branch = "+".join(node_branches) or LAYOUT
        blocks[block][branch] += ms
        branches[branch] += ms
        record = {"name": name, "ms": ms, "block": block, "branch": branch, "nodes": list(layer.nodes)}
        layers.append(record)
        if len(node_blocks) > 1 or len(node_branches) > 1:
            fused.append({"name": name, "ms": ms, "blocks": node_blocks, "branches": node_branches})
    order = _order(names)
    return FoldedProfile(
        total_ms=sum(times.values()),
        blocks={k: dict(v) for k, v in sorted(blocks.items(), key=lambda kv: order(kv[0].split(" + ")[0]))},
        branches=dict(sorted(branches.items(), key=lambda kv: -kv[1])),
        fused=sorted(fused, key=lambda d: -d["ms"]),
        layers=sorted(layers, key=lambda d: -d["ms"]),
    )


def _block(node: str, names: Sequence[str]) -> str:
    match = BLOCK_SCOPE.match(node)
    if match and int(match.group(1)) < len(names):
        return names[int(match.group(1))]
    return STEM


def _order(names: Sequence[str]):
    rank = {name: i for i, name in enumerate([STEM, *names, LAYOUT])}
    return lambda block: rank.get(block, len(rank))


__all__ = ["FoldedProfile", "InspectedLayer", "fold_layer_times", "nodes_from_name", "op_of", "read_inspector_layers"]
