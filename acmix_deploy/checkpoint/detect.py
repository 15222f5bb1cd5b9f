"""Infer an ACmix model's architecture and hyperparameters from a state dict's names and shapes.

Only tensor names and shapes are used, so detection works on any checkpoint layout and never
needs the training config. What shapes cannot tell (ACmix-ResNet's k_att, a Swin model
without shift masks' resolution) falls back to the official default and is reported as assumed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import CheckpointError
from ..families.spec import ModelSpec

# Wrappers that prefix every key: DataParallel/DDP, torch.compile, some EMA helpers.
KEY_PREFIXES = ("module.", "_orig_mod.", "model.")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes shared by every key (``module.``, ``_orig_mod.``, ...), repeatedly."""
    sd = dict(state_dict)
    changed = True
    while changed and sd:
        changed = False
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def detect_spec(state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
    """Recognise ACmix-ResNet or Swin-ACmix from a (prefix-stripped) state dict.

    Raises:
        CheckpointError: the tensors are not those of an ACmix model we know.
    """
    from ..families import all_families  # the families import the models; detection sits above both

    sd = strip_prefixes(state_dict)
    try:
        for family in all_families():
            if family.recognises(sd):
                return family.detect(sd)
    except (IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
        # A tensor of the wrong rank: the names say ACmix, the shapes do not.
        raise CheckpointError(f"tensor shapes do not fit an ACmix model ({type(exc).__name__}: {exc})") from None
    if "layer1.0.conv2.weight" in sd or "patch_embed.proj.weight" in sd:
        kind = "ResNet" if "layer1.0.conv2.weight" in sd else "Swin Transformer"
        raise CheckpointError(f"this is a plain {kind} checkpoint, not ACmix (no ACmix rate1/rate2 parameters)")
    sample = ", ".join(list(sd)[:4]) or "no tensors"
    raise CheckpointError(f"unknown architecture: not ACmix-ResNet or Swin-ACmix (keys: {sample}, ...)")


__all__ = ["KEY_PREFIXES", "ModelSpec", "detect_spec", "strip_prefixes"]
