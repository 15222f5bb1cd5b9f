"""Infer an ACmix model's architecture and hyperparameters from a state dict's names and shapes.

Only tensor names and shapes are used, so detection works on any checkpoint layout and never
needs the training config. What shapes cannot tell (ACmix-ResNet's k_att, a Swin model
without shift masks' resolution) falls back to the official default and is reported as assumed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from ..models.registry import match_variant

# Wrappers that prefix every key: DataParallel/DDP, torch.compile, some EMA helpers.
KEY_PREFIXES = ("module.", "_orig_mod.", "model.")


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint holds: family, constructor arguments, and how sure we are of each."""

    family: str  # a registered family name (acmix_deploy.families)
    hparams: dict
    variant: str | None = None  # registered name whose defaults match, e.g. "acmix_resnet50"
    img_size: int = 224
    assumed: tuple[str, ...] = field(default_factory=tuple)  # knobs not recorded by any tensor

    @property
    def num_classes(self) -> int:
        return int(self.hparams["num_classes"])

    def with_overrides(self, **overrides) -> ModelSpec:
        """A copy with caller-given knobs replacing detected ones (``img_size`` included)."""
        if not overrides:
            return self
        hparams = dict(self.hparams)
        img_size = int(overrides.get("img_size", self.img_size))
        # img_size is a constructor knob only where the family fixes the resolution (Swin); elsewhere it is
        # the export/preprocessing size.
        size_is_knob = self._family.fixed_input_size
        hparams.update({k: v for k, v in overrides.items() if k != "img_size" or size_is_knob})
        assumed = tuple(a for a in self.assumed if a not in overrides)
        return ModelSpec(self.family, hparams, match_variant(self.family, hparams), img_size, assumed)

    @property
    def _family(self):
        from ..families import get_family

        return get_family(self.family)

    def build(self):
        """A randomly initialised model of this spec (weights come from the checkpoint afterwards)."""
        return self._family.build(self.hparams)

    def summary(self) -> dict:
        return {
            "family": self.family,
            "variant": self.variant,
            "img_size": self.img_size,
            "hparams": self.hparams,
            "assumed": list(self.assumed),
        }


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


def count_indices(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest integer captured by ``pattern`` over the keys (0 when nothing matches)."""
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in sd if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def tensor_shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"expected tensor {key!r} is missing")
    return tuple(sd[key].shape)


def detect_spec(state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
    """Recognise ACmix-ResNet or Swin-ACmix from a (prefix-stripped) state dict.

    Raises:
        CheckpointError: the tensors are not those of an ACmix model we know.
    """
    from ..families import all_families

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
