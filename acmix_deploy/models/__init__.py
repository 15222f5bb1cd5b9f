"""The model zoo: reference ACmix models with the official code's keys and numerics.

Names are imported on first use, so reading the zoo table (``complexity.zoo_table``, used by
``acmix-deploy models``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "ACmix": ".acmix_resnet",
    "ACmixResNet": ".acmix_resnet",
    "Bottleneck": ".acmix_resnet",
    "SwinACmix": ".swin_acmix",
    "WindowAttentionACmix": ".swin_acmix",
    "build_model": ".registry",
    "get_entry": ".registry",
    "list_models": ".registry",
    "match_variant": ".registry",
}

__all__ = [
    "ACmix",
    "ACmixResNet",
    "Bottleneck",
    "SwinACmix",
    "WindowAttentionACmix",
    "build_model",
    "get_entry",
    "list_models",
    "match_variant",
]

if TYPE_CHECKING:
    from .acmix_resnet import ACmix, ACmixResNet, Bottleneck
    from .registry import build_model, get_entry, list_models, match_variant
    from .swin_acmix import SwinACmix, WindowAttentionACmix


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
