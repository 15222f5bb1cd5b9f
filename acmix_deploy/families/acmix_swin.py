"""The Swin-ACmix family (official ``Swin-Transformer/``): fixed to its training resolution, bicubic resize."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..models.registry import match_variant
from ..models.swin_acmix import SwinACmix
from .base import ModelFamily
from .spec import ModelSpec, count_indices, tensor_shape


class SwinACmixFamily(ModelFamily):
    name = "acmix_swin"
    title = "Swin-ACmix"
    interpolation = "bicubic"
    fixed_input_size = True  # input_resolution and the shift masks are built for one size
    official_layout = "official-swin"

    @property
    def model_class(self) -> type[nn.Module]:
        return SwinACmix

    def resolve_img_size(self, model: nn.Module, requested: int | None, recorded: int | None) -> int:
        self.check_input_size(model, requested or model.img_size)
        return int(model.img_size)

    def check_input_size(self, model: nn.Module, img_size: int) -> None:
        if img_size != model.img_size:
            raise ValueError(f"this Swin-ACmix model is fixed to {model.img_size} px, not {img_size}")

    def to_deploy(self, model: nn.Module, img_size: int | None) -> nn.Module:
        from ..rewrite.swin import DeploySwinACmix

        if img_size is not None:
            self.check_input_size(model, img_size)
        return DeploySwinACmix(model)

    def block_names(self, hparams: Mapping) -> list[str]:
        depths, names = hparams["depths"], []
        for stage, depth in enumerate(depths):
            names += [f"layers.{stage}.blocks.{j}" for j in range(depth)]
            if stage < len(depths) - 1:
                names.append(f"layers.{stage}.downsample")
        return names

    def stage_name(self, block: str) -> str:
        return ".".join(block.split(".")[:2])  # layers.1.blocks.3 and layers.1.downsample -> layers.1

    def classify_kernel(self, name: str, op: str, group: int) -> str:
        if "/attn/dep_conv/" in name or ("/attn/" in name and op == "Conv"):
            return "convolution"
        if "/attn/in_proj/" in name or ("/attn/" in name and op == "Split" and "Split_1" not in name):
            return "projection"
        if "/attn/" in name:
            return "attention"
        if "/mlp/" in name:
            return "mlp"
        if "norm" in name.lower() or op == "LayerNormalization":
            return "norm"
        return "other"

    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return "patch_embed.proj.weight" in state_dict and any(k.endswith("attn.rate1") for k in state_dict)

    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
        sd = state_dict
        embed_dim, _, patch, _ = tensor_shape(sd, "patch_embed.proj.weight")
        n_stages = count_indices(sd, r"layers\.(\d+)\.")
        depths = [count_indices(sd, rf"layers\.{i}\.blocks\.(\d+)\.") for i in range(n_stages)]
        heads, windows = [], []
        for i in range(n_stages):
            table = tensor_shape(sd, f"layers.{i}.blocks.0.attn.relative_position_bias_table")
            heads.append(table[1])
            windows.append((math.isqrt(table[0]) + 1) // 2)
        hidden = tensor_shape(sd, "layers.0.blocks.0.mlp.fc1.weight")[0]
        window = max(windows)  # the configured window; stages smaller than it use their own size
        img_size, assumed = _training_size(sd, windows, window, patch), []
        if img_size is None:
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
            "num_classes": tensor_shape(sd, "head.weight")[0] if "head.weight" in sd else 0,
            "ape": "absolute_pos_embed" in sd,
            "patch_norm": "patch_embed.norm.weight" in sd,
        }
        return ModelSpec(self.name, hparams, match_variant(self.name, hparams), img_size, tuple(assumed))


def _training_size(sd: Mapping[str, torch.Tensor], windows: list[int], window: int, patch: int) -> int | None:
    """The training resolution from the shift masks, the absolute position embedding, or small stages."""
    for i in range(len(windows)):
        mask_key = f"layers.{i}.blocks.1.attn_mask"
        if mask_key in sd:
            return math.isqrt(sd[mask_key].shape[0]) * windows[i] * patch * 2**i
    if "absolute_pos_embed" in sd:
        return math.isqrt(sd["absolute_pos_embed"].shape[1]) * patch
    # No shifted block: every stage with a window smaller than the configured one is its whole map.
    small = [i for i in range(len(windows)) if windows[i] < window]
    return windows[small[0]] * patch * 2 ** small[0] if small else None
