"""Infer an ACmix model's architecture and hyperparameters from a state dict's names and shapes.

Only tensor names and shapes are used, so detection works on any checkpoint layout and never
needs the training config. What shapes cannot tell (ACmix-ResNet's k_att, a Swin model
without shift masks' resolution) falls back to the official default and is reported as assumed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError
from ..models.registry import FAMILIES, match_variant

# Wrappers that prefix every key: DataParallel/DDP, torch.compile, some EMA helpers.
KEY_PREFIXES = ("module.", "_orig_mod.", "model.")


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint holds: family, constructor arguments, and how sure we are of each."""

    family: str  # "acmix_resnet" | "acmix_swin"
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
        # ACmix-ResNet runs at any size: img_size is the export/preprocessing size, not a constructor knob.
        hparams.update({k: v for k, v in overrides.items() if k != "img_size" or self.family == "acmix_swin"})
        assumed = tuple(a for a in self.assumed if a not in overrides)
        return ModelSpec(self.family, hparams, match_variant(self.family, hparams), img_size, assumed)

    def build(self):
        """A randomly initialised model of this spec (weights come from the checkpoint afterwards)."""
        return FAMILIES[self.family](**self.hparams)

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


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest integer captured by ``pattern`` over the keys (0 when nothing matches)."""
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in sd if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"expected tensor {key!r} is missing")
    return tuple(sd[key].shape)


def detect_spec(state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
    """Recognise ACmix-ResNet or Swin-ACmix from a (prefix-stripped) state dict.

    Raises:
        CheckpointError: the tensors are not those of an ACmix model we know.
    """
    sd = strip_prefixes(state_dict)
    try:
        if "layer1.0.conv2.rate1" in sd and "conv1.weight" in sd:
            return _detect_resnet(sd)
        if "patch_embed.proj.weight" in sd and any(k.endswith("attn.rate1") for k in sd):
            return _detect_swin(sd)
    except (IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
        # A tensor of the wrong rank: the names say ACmix, the shapes do not.
        raise CheckpointError(f"tensor shapes do not fit an ACmix model ({type(exc).__name__}: {exc})") from None
    if "layer1.0.conv2.weight" in sd or "patch_embed.proj.weight" in sd:
        kind = "ResNet" if "layer1.0.conv2.weight" in sd else "Swin Transformer"
        raise CheckpointError(f"this is a plain {kind} checkpoint, not ACmix (no ACmix rate1/rate2 parameters)")
    sample = ", ".join(list(sd)[:4]) or "no tensors"
    raise CheckpointError(f"unknown architecture: not ACmix-ResNet or Swin-ACmix (keys: {sample}, ...)")


def _detect_resnet(sd: Mapping[str, torch.Tensor]) -> ModelSpec:
    width = _shape(sd, "conv1.weight")[0]
    layers = [_count(sd, rf"layer{i}\.(\d+)\.conv1\.weight$") for i in range(1, 5)]
    if 0 in layers:
        raise CheckpointError(f"ACmix-ResNet checkpoint with an empty stage: stage depths {layers}")
    fc_shape = _shape(sd, "layer1.0.conv2.fc.weight")  # (k_conv², 3*head, 1, 1)
    k_conv = math.isqrt(fc_shape[0])
    if k_conv * k_conv != fc_shape[0] or fc_shape[1] % 3:
        raise CheckpointError(f"layer1.0.conv2.fc.weight has unexpected shape {list(fc_shape)}")
    head = fc_shape[1] // 3
    hparams = {
        "layers": layers,
        "k_att": 7,  # no tensor records the attention window: the official value
        "head": head,
        "k_conv": k_conv,
        "num_classes": _shape(sd, "fc.weight")[0],
        "width": width,
    }
    return ModelSpec("acmix_resnet", hparams, match_variant("acmix_resnet", hparams), 224, ("k_att", "img_size"))


def _detect_swin(sd: Mapping[str, torch.Tensor]) -> ModelSpec:
    embed_dim, _, patch, _ = _shape(sd, "patch_embed.proj.weight")
    n_stages = _count(sd, r"layers\.(\d+)\.")
    depths = [_count(sd, rf"layers\.{i}\.blocks\.(\d+)\.") for i in range(n_stages)]
    heads, windows = [], []
    for i in range(n_stages):
        table = _shape(sd, f"layers.{i}.blocks.0.attn.relative_position_bias_table")
        side = math.isqrt(table[0])
        heads.append(table[1])
        windows.append((side + 1) // 2)
    hidden = _shape(sd, "layers.0.blocks.0.mlp.fc1.weight")[0]
    assumed: list[str] = []

    # The configured window is the largest one; stages smaller than it use their own size.
    window = max(windows)
    img_size = None
    for i in range(n_stages):
        mask_key = f"layers.{i}.blocks.1.attn_mask"
        if mask_key in sd:
            n_windows = sd[mask_key].shape[0]
            per_side = math.isqrt(n_windows)
            img_size = per_side * windows[i] * patch * 2**i
            break
    if img_size is None and "absolute_pos_embed" in sd:
        img_size = math.isqrt(sd["absolute_pos_embed"].shape[1]) * patch
    if img_size is None:
        # No shifted block: every stage with a window smaller than the configured one is its whole map.
        small = [i for i in range(n_stages) if windows[i] < window]
        if small:
            img_size = windows[small[0]] * patch * 2 ** small[0]
        else:
            img_size = 224
            assumed.append("img_size")
    hparams = {
        "img_size": img_size,
        "patch_size": patch,
        "window_size": window,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "mlp_ratio": hidden / embed_dim,
        "num_classes": _shape(sd, "head.weight")[0] if "head.weight" in sd else 0,
        "ape": "absolute_pos_embed" in sd,
        "patch_norm": "patch_embed.norm.weight" in sd,
    }
    return ModelSpec("acmix_swin", hparams, match_variant("acmix_swin", hparams), img_size, tuple(assumed))
