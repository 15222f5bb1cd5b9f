"""Deploy rewrites: the same function as the reference model, in export-friendly, faster operators.

``to_deploy`` returns a new module tree; the input model is never modified.
"""

from __future__ import annotations

import copy

from torch import nn

from ..families import family_of


def to_deploy(model: nn.Module, img_size: int | None = None) -> nn.Module:
    """The deploy form of an ACmix model (eval mode).

    Args:
        model: an ACmix model in reference form (any registered family).
        img_size: input resolution the deploy form is specialised to (ACmix-ResNet; default 224).
            Families with a fixed resolution (Swin-ACmix) refuse any other.

    Raises:
        ValueError: the model cannot run at ``img_size``.
    """
    source = copy.deepcopy(model).eval()
    return family_of(source).to_deploy(source, img_size).eval()


__all__ = ["to_deploy"]
