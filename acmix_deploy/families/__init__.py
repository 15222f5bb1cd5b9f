"""The model-family registry: one spec per family, asked by every stage that needs family knowledge.

``get_family("acmix_swin")``, ``family_of(model)``, ``all_families()``. To add a family, write a
``ModelFamily`` subclass in its own module and add it to ``_FAMILIES`` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ModelFamily

if TYPE_CHECKING:
    from torch import nn

_FAMILIES: dict[str, ModelFamily] = {}


def _registry() -> dict[str, ModelFamily]:
    """Families are imported on first use: their modules pull in torch and the model code."""
    if not _FAMILIES:
        from .acmix_resnet import ACmixResNetFamily
        from .acmix_swin import SwinACmixFamily

        for family in (ACmixResNetFamily(), SwinACmixFamily()):
            _FAMILIES[family.name] = family
    return _FAMILIES


def all_families() -> list[ModelFamily]:
    return list(_registry().values())


def family_names() -> list[str]:
    return list(_registry())


def get_family(name: str) -> ModelFamily:
    """The spec of a registered family.

    Raises:
        KeyError: unknown family (the message lists the known ones).
    """
    try:
        return _registry()[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(_registry())}") from None


def family_of(model: nn.Module) -> ModelFamily:
    """The family a model instance belongs to.

    Raises:
        TypeError: not an ACmix model of a registered family.
    """
    for family in _registry().values():
        if family.owns(model):
            return family
    raise TypeError(f"not an ACmix model: {type(model).__name__}")


__all__ = ["ModelFamily", "all_families", "family_names", "family_of", "get_family"]
