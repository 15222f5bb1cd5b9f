"""The model zoo: reference ACmix models with the official code's keys and numerics.

Names are imported on first use, so reading the zoo table (``complexity.zoo_table``, used by
``acmix-deploy models``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'acmix_deploy.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
