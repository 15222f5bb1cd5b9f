"""Per-layer time of a TensorRT engine, folded onto the model's blocks: ``acmix-deploy profile ENGINE``.

The TensorRT runner reports layer times through an ``IProfiler`` (``TensorRTRunner(profile=True)``,
:meth:`~acmix_deploy.runtimes.tensorrt.TensorRTRunner.layer_times`). The engine inspector lists
the ONNX nodes fused into each layer, so :mod:`.trt_fold` attributes each layer's time to its block
and ACmix branch, as the ONNX profile (:mod:`.layers`) does; a fused layer spanning branches is
reported under the combined label and listed in ``fused``, not guessed apart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .layers import block_names
from .trt_fold import fold_layer_times


@dataclass
class EngineLayerProfile:
    """Mean milliseconds per layer of an engine, and their sums per block."""

    engine: str
    iterations: int
    batch: int
    total_ms: float  # summed layer time per inference
    blocks: dict[str, float] = field(default_factory=dict)  # block -> ms, in model order
    layers: list[dict] = field(default_factory=list)  # {"name", "block", "ms"}, slowest first
    branches: dict[str, dict[str, float]] = field(default_factory=dict)  # block -> branch -> ms (trt_fold)
    fused: list[dict] = field(default_factory=list)  # layers whose nodes span branches or blocks

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self, top: int = 15) -> str:
        lines = [f"layer time per inference: {self.total_ms:.3f} ms (TensorRT profiler, {self.iterations} runs)", ""]
        lines.append("by block:")
        for block, ms in self.blocks.items():
            lines.append(f"  {block:<22} {ms:>9.3f} ms  {100 * ms / max(self.total_ms, 1e-9):5.1f}%")
            split = self.branches.get(block, {})
            if len(split) > 1:
                lines += [
                    f"    {branch:<20} {t:>9.3f} ms" for branch, t in sorted(split.items(), key=lambda kv: -kv[1])
                ]
        if self.fused:
            lines += ["", "fused layers spanning branches or blocks (time not split):"]
            fused = self.fused[:top] if top else self.fused  # 0: all
            lines += [f"  {f['ms']:>8.3f} ms  {'+'.join(f['branches']):<24} {f['name']}" for f in fused]
        layers = self.layers[:top] if top else self.layers
        lines += ["", f"top {len(layers)} layers:" if top else f"all {len(layers)} layers:"]
        lines += [f"  {layer['ms']:>8.3f} ms  {layer['block']:<20} {layer['name']}" for layer in layers]
        return "\n".join(lines)


def _block_of(layer: str, names: list[str]) -> str:
    scope = layer.split("/blocks/blocks.", 1)
    if len(scope) == 2:
        index = scope[1].split("/", 1)[0]
        if index.isdigit() and int(index) < len(names):
            return names[int(index)]
    return "stem/head" if layer.startswith("/") else "other"


def profile_engine(path: str | Path, *, iterations: int = 10, batch: int = 1, device: int = 0) -> EngineLayerProfile:
    """Run ``iterations`` profiled inferences of a TensorRT engine and fold layer times onto its blocks.

    Raises:
        MissingDependencyError: TensorRT is not installed.
        RunnerError, ManifestError: no GPU, or an engine (or sidecar) that cannot run here.
    """
    from ..runtimes import open_runner

    with open_runner(path, "tensorrt", profile=True, device=device) as runner:
        manifest = runner.manifest
        x = np.random.default_rng(0).standard_normal((batch, 3, manifest.img_size, manifest.img_size), np.float32)
        for _ in range(iterations):
            runner.infer(x)
        times = runner.layer_times()
        inspector = runner.layer_information()
    folded = fold_layer_times(times, inspector, manifest.family, manifest.hparams)
    names = block_names(manifest)
    blocks: dict[str, float] = defaultdict(float)
    layers = []
    for name, ms in times.items():
        block = _block_of(name, names)
        blocks[block] += ms
        layers.append({"name": name, "block": block, "ms": ms})
    order = {name: i for i, name in enumerate(["stem/head", *names, "other"])}
    return EngineLayerProfile(
        engine=str(path),
        iterations=iterations,
        batch=batch,
        total_ms=sum(blocks.values()),
        blocks=dict(sorted(blocks.items(), key=lambda kv: order.get(kv[0], len(order)))),
        layers=sorted(layers, key=lambda layer: -layer["ms"]),
        branches=folded.blocks,
        fused=folded.fused,
    )
