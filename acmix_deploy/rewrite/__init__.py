"""Deploy rewrites: the same function as the reference model, in export-friendly, faster operators.

``to_deploy`` returns a new module tree; the input model is never modified.
"""

from __future__ import annotations

import copy

from torch import nn

from ..models.registry import family_of


def to_deploy(model: nn.Module, img_size: int | None = None) -> nn.Module:
    """The deploy form of an ACmix model (eval mode).

    Args:
        model: an ACmix-ResNet or Swin-ACmix in reference form.
        img_size: input resolution the deploy form is specialised to (ACmix-ResNet; default 224).
            Swin-ACmix is fixed to its own training resolution.
    """
    family = family_of(model)
    source = copy.deepcopy(model).eval()
    if family == "acmix_swin":
        from .swin import DeploySwinACmix

        if img_size not in (None, source.img_size):
            raise ValueError(f"this Swin-ACmix model is fixed to {source.img_size} px, not {img_size}")
        return DeploySwinACmix(source).eval()
    from .resnet import DeployACmixResNet

    return DeployACmixResNet(source, img_size or 224).eval()


__all__ = ["to_deploy"]
