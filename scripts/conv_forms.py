"""Every exact form of ACmix's convolution branch we know, timed as ONNX Runtime's conv kernels alone.

Used by ``bench_window_matmuls.py`` (ACmix-ResNet) and ``bench_floor.py --isolated`` (Swin-ACmix) to
put the convolution branch into their bounds at the fastest measured kernel time instead of its fewest
MACs at the GEMM probe's rate, a rate no convolution with 9-12 inputs a group reaches here.

The branch is ``dep_conv(fc(q, k, v))``: for each head channel d, a 1x1 mix of the 3*heads q/k/v
heads into 9 maps (``fc``), then a 3x3 conv with groups = head_dim, 9 inputs and ``heads`` outputs
a group (``dep_conv``). All of it is linear, so any exact graph computes it as one of:

- ``folded m``: ``dep_conv ∘ fc`` as ONE 3x3 conv reading the 3C q/k/v channels (groups = head_dim,
  3*heads inputs a group; ACmix-ResNet's deploy form), ``m`` head channels merged into one group with
  zero weights between them (ORT's blocked NCHWc kernels need input and output channels a group in
  multiples of 8 on AVX2, 16 on AVX-512; m = 1 is the exact structure);
- ``factored m``: q/k/v and ``fc`` folded into one 1x1 conv of the block input (C -> 9 head_dim), then
  ``dep_conv`` with m head channels a group (Swin-ACmix's deploy form beyond stage 1);
- ``official m``: ``fc`` as the official code runs it (a 1x1 conv over the 3*heads heads of an
  (head_dim, H*W) image), then ``dep_conv`` with m head channels a group;
- ``split m``: the folded conv cut into three, one over each of q, k and v as separate tensors
  (groups = head_dim / m, heads*m inputs a group each; their sum free), for graphs that keep q, k
  and v apart instead of splitting one projection;
- ``dense``: the whole branch as one dense 3x3 conv of the block input (C -> C; Swin-ACmix's stage 1).

Each form is a graph of its convs, optimised by ONNX Runtime as a model would be; its conv kernels are
cut out of the optimised graph and run on fixed buffers (``isolated_bound``): reorders, transposes
and the border-bias map the dense form needs count as free.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from isolated_bound import GEMM_KERNELS, bound_runner, kernels_only, optimized_graph_for
from onnx import TensorProto, helper, numpy_helper

MERGES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class ConvBranch:
    """One layer's convolution branch: channels, heads, input side (square map) and stride."""

    channels: int
    heads: int
    side_in: int
    stride: int = 1

    @property
    def head_dim(self) -> int:
        return self.channels // self.heads

    def fewest_macs(self, batch: int) -> int:
        """The official fc (at input resolution) + dep_conv, or the two folded, whichever is fewer."""
        c, side = self.channels, self.side_in // self.stride
        official = 27 * c * self.side_in**2 + 81 * c * side**2
        folded = 9 * 3 * self.heads * c * side**2
        return batch * min(official, folded)


def _conv(name: str, cin: int, cout: int, groups: int, kernel: int, stride: int, rng) -> tuple:
    weight = rng.standard_normal((cout, cin // groups, kernel, kernel)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    pad = kernel // 2
    node = helper.make_node(
        "Conv", [f"{name}_x", f"{name}_w", f"{name}_b"], [f"{name}_y"], name=name, group=groups,
        kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride, stride],
    )  # fmt: skip
    return node, [numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]


def form_convs(layer: ConvBranch, batch: int) -> dict[str, list[tuple[str, int, int, int, int, int, tuple]]]:
    """Form name -> its convs as (name, in, out, groups, kernel, stride, input shape)."""
    c, heads, hd, s, side = layer.channels, layer.heads, layer.head_dim, layer.stride, layer.side_in
    image = (batch, c, side, side)
    forms: dict[str, list] = {"dense": [("dense", c, c, 1, 3, s, image)]}
    for m in (m for m in MERGES if hd % m == 0):
        forms[f"folded m{m}"] = [("folded", 3 * c, c, hd // m, 3, s, (batch, 3 * c, side, side))]
        dep = ("dep", 9 * hd, c, hd // m, 3, s, (batch, 9 * hd, side, side))
        forms[f"factored m{m}"] = [("f", c, 9 * hd, 1, 1, 1, image), dep]
        forms[f"official m{m}"] = [("fc", 3 * heads, 9, 1, 1, 1, (batch, 3 * heads, hd, side * side)), dep]
        forms[f"split m{m}"] = [(f"split_{t}", c, c, hd // m, 3, s, image) for t in "qkv"]
    return forms


def form_model(convs: Iterable[tuple], seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One graph holding a form's convs side by side (each its own input), and a feed for it."""
    rng = np.random.default_rng(seed)
    nodes, inits, inputs, outputs, feed = [], [], [], [], {}
    for name, cin, cout, groups, kernel, stride, shape in convs:
        node, weights = _conv(name, cin, cout, groups, kernel, stride, rng)
        nodes.append(node)
        inits += weights
        inputs.append(helper.make_tensor_value_info(f"{name}_x", TensorProto.FLOAT, list(shape)))
        outputs.append(helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None))
        feed[f"{name}_x"] = rng.standard_normal(shape, dtype=np.float32)
    graph = helper.make_graph(nodes, "conv_form", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), feed


def kernel_call(convs: Iterable[tuple], threads: int) -> Callable[[], None]:
    """A form's conv kernels as ONNX Runtime optimises them, cut out and run on fixed buffers."""
    model, feed = form_model(convs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "form.onnx"
        onnx.save(model, path)
        optimized, shapes = optimized_graph_for(path, feed, threads, Path(tmp))
    sub, inputs, outputs = kernels_only(optimized, shapes, GEMM_KERNELS)
    return bound_runner(sub, inputs, outputs, threads)


def form_candidates(layers: Iterable[ConvBranch], batch: int, threads: int) -> dict[str, Callable[[], None]]:
    """``conv/<layer>/<form>`` -> its kernel call, for every form of every layer (for one interleaved run)."""
    return {
        f"conv/{layer}/{form}": kernel_call(convs, threads)
        for layer in dict.fromkeys(layers)
        for form, convs in form_convs(layer, batch).items()
    }


def fastest_forms(layers: Iterable[ConvBranch], ms: dict[str, float]) -> dict[ConvBranch, dict]:
    """Per layer: every form's median ms (from a run of :func:`form_candidates`) and the fastest form."""
    out = {}
    for layer in dict.fromkeys(layers):
        prefix = f"conv/{layer}/"
        per_form = {k.removeprefix(prefix): v for k, v in ms.items() if k.startswith(prefix)}
        best = min(per_form, key=per_form.get)
        out[layer] = {"forms": per_form, "best": best, "ms": per_form[best]}
    return out


def swin_conv_branches(name: str) -> list[ConvBranch] | None:
    """Swin-ACmix's convolution path, one :class:`ConvBranch` a block (``None`` for other families)."""
    if "swin" not in name:
        return None
    from acmix_deploy.models import build_model
    from acmix_deploy.models.swin_acmix import SwinBlockACmix

    blocks = [m for m in build_model(name.split(":")[0]).modules() if isinstance(m, SwinBlockACmix)]
    return [ConvBranch(b.dim, b.attn.num_heads, b.input_resolution[0]) for b in blocks]
