"""What a checkpoint holds, in family terms, and the state-dict shape readers family detectors share.

Detection reads only tensor names and shapes, so it works on any checkpoint layout and never
needs the training config. What shapes cannot tell (ACmix-ResNet's k_att, a Swin model without
shift masks' resolution) falls back to the official default and is reported as assumed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from ..models.registry import match_variant


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
        from . import get_family  # the registry imports the family modules, which import this one

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


def count_indices(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest integer captured by ``pattern`` over the keys (0 when nothing matches)."""
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in sd if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def tensor_shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"expected tensor {key!r} is missing")
    return tuple(sd[key].shape)
