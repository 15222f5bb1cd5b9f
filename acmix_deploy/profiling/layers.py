"""Per-layer profile folded back onto the model's structure: where does ACmix spend its time?

ONNX Runtime's node profile lists hundreds of kernels with exporter-generated names. We map each
kernel to (block, branch) using the module scope the exporter writes into node names
(``/blocks/blocks.3/acmix/MatMul``) and the graph itself (a grouped Conv inside ACmix is the
convolution branch, a 1x1 Conv there is the shared q/k/v projection), then name blocks as the
official model does (``layer2.0``, ``layers.1.blocks.3``). Kernels ORT adds for layout changes
(``ReorderInput``...) carry no scope and are reported as ``layout``. Kernels ORT makes by fusing
(``BiasGelu`` from an MLP's bias Add + Gelu, ``SkipLayerNormalization``) carry no scope in their names
either, but their outputs keep the names of the tensors they replace, which do: they are placed by
those (from the graph the profiled session optimised), so an MLP's activation is not "layout".

The profiler's own cost is large next to small kernels: per node it records timing, memory and
thread-pool statistics (measured here: ~50-60 us per node, so a 295-node digits model that runs
10 ms unprofiled took 27 ms profiled, 24 ms of it inside kernels). The profile therefore also times
the model without the profiler, interleaved with the profiled runs, and prints both: the kernel
table gives shares, ``benchmark`` gives latency.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..families import nodes as scopes
from ..families.nodes import BRANCHES
from ..manifest import Manifest


@dataclass
class LayerProfile:
    iterations: int
    total_ms: float  # per inference, summed kernel time
    blocks: dict[str, dict[str, float]] = field(default_factory=dict)  # block -> branch -> ms
    branches: dict[str, float] = field(default_factory=dict)
    top_nodes: list[dict] = field(default_factory=list)
    by_op: dict[str, float] = field(default_factory=dict)
    kernels_per_run: float = 0.0  # kernel events per profiled inference
    profiled_run_ms: float | None = None  # median wall time of a profiled inference (ORT's model_run)
    unprofiled_p50_ms: float | None = None  # the same model without the profiler, timed alongside

    def explanation(self) -> str | None:
        """Why the kernel sum differs from ``benchmark``'s p50: the profiler's per-node overhead, measured."""
        if self.unprofiled_p50_ms is None or self.profiled_run_ms is None:
            return None
        per_kernel_us = 1000.0 * (self.profiled_run_ms - self.unprofiled_p50_ms) / max(self.kernels_per_run, 1.0)
        return (
            f"unprofiled, this model runs {self.unprofiled_p50_ms:.2f} ms (p50, timed alongside: what `benchmark` "
            f"measures);\na profiled run took {self.profiled_run_ms:.2f} ms: the profiler adds ~{per_kernel_us:.0f} us "
            f"to each of {self.kernels_per_run:.0f} kernels, so read the times below as shares, not latency"
        )

    def to_dict(self) -> dict:
        return self.__dict__.copy()

    def table(self, top: int = 15) -> str:
        lines = [
            f"kernel time per inference: {self.total_ms:.2f} ms (sum over kernels, mean of {self.iterations} "
            "profiled runs)"
        ]
        note = self.explanation()
        lines += [note, ""] if note else [""]
        lines.append("by branch:")
        for branch, ms in sorted(self.branches.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {branch:<12} {ms:>9.2f} ms  {100 * ms / max(self.total_ms, 1e-9):5.1f}%")
        lines.append("")
        lines.append(f"{'block':<22}" + "".join(f"{b[:11]:>12}" for b in BRANCHES[:-1]) + f"{'total':>10}")
        for block, parts in self.blocks.items():
            total = sum(parts.values())
            cells = "".join(f"{parts.get(b, 0.0):>12.2f}" for b in BRANCHES[:-1])
            lines.append(f"{block:<22}{cells}{total:>10.2f}")
        lines.append("")
        shown = self.top_nodes[:top] if top else self.top_nodes  # 0: every kernel
        lines.append(f"top {len(shown)} kernels:" if top else f"all {len(shown)} kernels:")
        for node in shown:
            lines.append(
                f"  {node['ms']:>8.3f} ms  {node['op']:<14} {node['block']:<20} {node['branch']:<11} {node['name']}"
            )
        return "\n".join(lines)


def block_names(manifest: Manifest) -> list[str]:
    """Official names of the deploy model's ``blocks`` children, in order (none for a generic model)."""
    return scopes.block_names(manifest.family, manifest.hparams)


def graph_index(onnx_path: Path) -> dict[str, dict]:
    """node name and output names -> {op, group, name} from the ONNX graph."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    index: dict[str, dict] = {}
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        info = {"op": node.op_type, "group": group, "name": node.name}
        index[node.name] = info
        for out in node.output:
            index.setdefault(out, info)
    return index


# ops that only move data: an unscoped one is a layout change ORT inserted, whatever its output's name
DATA_MOVEMENT_OPS = frozenset(
    {"ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Identity", "Cast", "MemcpyFromHost", "MemcpyToHost"}
)


def fused_kernel_scopes(optimized_path: Path) -> dict[str, str]:
    """Unscoped compute kernels of ORT's optimised graph -> the first scoped name among their outputs."""
    import onnx

    model = onnx.load(str(optimized_path), load_external_data=False)
    scoped: dict[str, str] = {}
    for node in model.graph.node:
        if node.name.startswith("/") or node.op_type in DATA_MOVEMENT_OPS:
            continue
        name = next((out for out in node.output if out.startswith("/")), None)
        if name is not None:
            scoped[node.name] = name
    return scoped


def kernel_branch(name: str, op: str, graph: dict[str, dict], family: str | None) -> str:
    """The ACmix branch of a profiled kernel (its node name, or the scoped name it was placed by)."""
    if not name.startswith("/"):
        return "layout"
    base = name.removesuffix("_nchwc")
    node = graph.get(base) or graph.get(base.split("/MatmulTransposeFusion")[0]) or {"op": op, "group": 1}
    return scopes.node_branch(family, name, node["op"], node["group"])


def profile_onnx(
    onnx_path: str | Path, manifest: Manifest, *, iterations: int = 10, batch: int = 1, threads: int = 0
) -> LayerProfile:
    """Run ``iterations`` profiled inferences in ONNX Runtime and fold kernel times onto the model."""
    from acmix_deploy.runtimes.onnxruntime import ort_session

    from ..timing import time_interleaved

    onnx_path = Path(onnx_path)
    graph = graph_index(onnx_path)
    names = block_names(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"  # the graph the sessions run, to place fused kernels
        session = ort_session(
            onnx_path, threads=threads, profile_prefix=Path(tmp) / "ort", optimized_model_path=optimized
        )
        size = manifest.img_size
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
        feed = {session.get_inputs()[0].name: x}
        session.run(None, feed)  # warm-up, excluded below by skipping the first run's events
        session.end_profiling()
        session = ort_session(onnx_path, threads=threads, profile_prefix=Path(tmp) / "ort2")
        plain = ort_session(onnx_path, threads=threads)  # the same model without the profiler, for scale
        # one warm-up round (the profiled session's first run is dropped below), then interleaved rounds
        timed = time_interleaved(
            {"profiled": lambda: session.run(None, feed), "plain": lambda: plain.run(None, feed)},
            rounds=iterations,
            warmup=1,
        )
        events = json.loads(Path(session.end_profiling()).read_text())
        fused = fused_kernel_scopes(optimized)

    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    skip_until = runs[0]["ts"] + runs[0]["dur"] if runs else 0  # drop the first (cold) run
    per_node: dict[str, dict] = {}
    kernel_events = 0
    later_runs = sorted(r["dur"] / 1000.0 for r in runs[1:])
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < skip_until:
            continue
        name = e["name"].removesuffix("_kernel_time")
        op = e.get("args", {}).get("op_name", "?")
        entry = per_node.setdefault(name, {"name": name, "op": op, "us": 0.0})
        entry["us"] += e["dur"]
        kernel_events += 1
    n = max(iterations, 1)
    blocks: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    branches: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    nodes = []
    for entry in per_node.values():
        ms = entry["us"] / 1000.0 / n
        placed_by = fused.get(entry["name"], entry["name"])
        block = scopes.node_block(placed_by, names)
        branch = kernel_branch(placed_by, entry["op"], graph, manifest.family)
        blocks[block][branch] += ms
        branches[branch] += ms
        by_op[entry["op"]] += ms
        nodes.append({"name": entry["name"], "op": entry["op"], "ms": ms, "block": block, "branch": branch})
    nodes.sort(key=lambda d: -d["ms"])
    order = {name: i for i, name in enumerate(["stem/head", *names, "layout"])}
    return LayerProfile(
        iterations=iterations,
        total_ms=sum(branches.values()),
        blocks={k: dict(v) for k, v in sorted(blocks.items(), key=lambda kv: order.get(kv[0], 1e9))},
        branches=dict(branches),
        top_nodes=nodes,
        by_op=dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
        kernels_per_run=kernel_events / n,
        profiled_run_ms=later_runs[len(later_runs) // 2] if later_runs else None,
        unprofiled_p50_ms=timed["plain"].p50,
    )
