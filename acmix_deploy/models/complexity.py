"""Model size and compute, measured without running any arithmetic.

MACs are counted by torch's ``FlopCounterMode`` on the meta device (shapes only, no data),
so the numbers come from the same code that runs, and cost well under a second per model.
They cover convolutions and matrix multiplies; ACmix's window-attention products are
element-wise and not counted (~0.27 GFLOP of ACmix-ResNet-50's 7.2).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import get_entry


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(name: str, img_size: int | None = None, **overrides) -> int:
    """Multiply-accumulates of one forward pass of a registered variant at batch 1."""
    entry = get_entry(name)
    size = img_size or entry.default_img_size
    if entry.family == "acmix_swin":
        overrides.setdefault("img_size", size)
    with torch.device("meta"):
        model = entry.build(**overrides).eval()
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def describe(name: str) -> dict:
    """Name, family, parameter count and MACs at the default input size."""
    entry = get_entry(name)
    with torch.device("meta"):
        params = count_parameters(entry.build())
    return {
        "name": name,
        "family": entry.family,
        "params": params,
        "macs": count_macs(name),
        "img_size": entry.default_img_size,
    }
