"""A flat registry of model variants: one small factory per name, listed by ``list_models()``.

The registry feeds the CLI (``acmix-deploy models``, ``init``) and the tests' parametrisation.
Each variant is the official configuration; keyword overrides change any knob (width,
num_classes, img_size, ...), which is how tests build small models.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .acmix_resnet import ACmixResNet
from .swin_acmix import SwinACmix


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant: its family, default constructor arguments and default input size."""

    name: str
    family: str  # a registered family name (acmix_deploy.families)
    model_class: type[nn.Module]
    defaults: dict
    default_img_size: int = 224

    def build(self, **overrides) -> nn.Module:
        return self.model_class(**{**self.defaults, **overrides})


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


for _name, _layers in {
    "acmix_resnet26": (1, 2, 4, 1),
    "acmix_resnet38": (2, 3, 5, 2),
    "acmix_resnet50": (3, 4, 6, 3),
}.items():
    defaults = {"layers": _layers, "k_att": 7, "head": 4, "k_conv": 3, "width": 64}
    register(ModelEntry(_name, "acmix_resnet", ACmixResNet, defaults))
for _name, _depths in {"acmix_swin_tiny": (2, 2, 6, 2), "acmix_swin_small": (2, 2, 18, 2)}.items():
    register(
        ModelEntry(
            _name,
            "acmix_swin",
            SwinACmix,
            {
                "img_size": 224,
                "patch_size": 4,
                "window_size": 7,
                "embed_dim": 96,
                "depths": _depths,
                "num_heads": (3, 6, 12, 24),
            },
        )
    )


def list_models() -> list[str]:
    """Names of every registered variant, in registration order."""
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(_REGISTRY)}") from None


def build_model(name: str, **overrides) -> nn.Module:
    """Build a registered variant in eval mode, with random (official-style) initialisation.

    Args:
        name: a name from :func:`list_models`.
        **overrides: constructor arguments replacing the variant's defaults.
    """
    return get_entry(name).build(**overrides).eval()


def match_variant(family: str, hparams: dict) -> str | None:
    """The registered name whose defaults the given hyperparameters agree with, if any."""
    for entry in _REGISTRY.values():
        if entry.family != family:
            continue
        if all(_same(hparams.get(k), v) for k, v in entry.defaults.items() if k in hparams):
            return entry.name
    return None


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b
