"""Model size and compute, measured without running any arithmetic, and the zoo table built from it.

MACs are counted by torch's ``FlopCounterMode`` on the meta device (shapes only, no data),
so the numbers come from the same code that runs, and cost well under a second per model.
They cover convolutions and matrix multiplies; ACmix's window-attention products are
element-wise and not counted (~0.27 GFLOP of ACmix-ResNet-50's 7.2).

``acmix-deploy models`` reads the same figures from ``data/zoo.json`` (no torch import, no
counting: start-up in a fraction of a second); tests/models/test_complexity.py recounts every
registered variant and fails when the table drifts (regenerate it with ``write_zoo_table()``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

ZOO_TABLE = "data/zoo.json"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(name: str, img_size: int | None = None, **overrides) -> int:
    """Multiply-accumulates of one forward pass of a registered variant at batch 1."""
    import torch

    from .registry import get_entry

    entry = get_entry(name)
    size = img_size or entry.default_img_size
    if "img_size" in entry.defaults:  # the resolution is a constructor knob of this variant (built in)
        overrides.setdefault("img_size", size)
    with torch.device("meta"):
        model = entry.build(**overrides).eval()
    return count_model_macs(model, size)


def count_model_macs(model: nn.Module, img_size: int) -> int:
    """Multiply-accumulates of ``model`` on one ``img_size`` image (built on the meta device: no data)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.empty(1, 3, img_size, img_size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


def describe(name: str) -> dict:
    """Name, family, parameter count and MACs at the default input size (counted now)."""
    import torch

    from .registry import get_entry

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


def zoo_table() -> list[dict]:
    """:func:`describe` of every registered variant, in registration order, as the shipped table holds it."""
    return json.loads(resources.files("acmix_deploy").joinpath(ZOO_TABLE).read_text(encoding="utf-8"))


def write_zoo_table() -> Path:
    """Recount every registered variant into ``data/zoo.json`` (after adding or changing a variant)."""
    from .registry import list_models

    path = Path(__file__).resolve().parents[1] / ZOO_TABLE
    path.write_text(json.dumps([describe(name) for name in list_models()], indent=2) + "\n")
    return path
