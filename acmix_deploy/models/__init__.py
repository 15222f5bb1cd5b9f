"""The model zoo: reference ACmix models with the official code's keys and numerics."""

from .acmix_resnet import ACmix, ACmixResNet, Bottleneck
from .registry import build_model, get_entry, list_models, match_variant
from .swin_acmix import SwinACmix, WindowAttentionACmix

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
