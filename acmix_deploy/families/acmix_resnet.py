"""The ACmix-ResNet family (official ``ResNet/``): any input size that halves cleanly, bilinear resize."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from ..models.acmix_resnet import ACmixResNet
from ..models.input_size import check_resnet_input_size
from ..models.registry import match_variant
from .base import ModelFamily
from .spec import ModelSpec, count_indices, tensor_shape


class ACmixResNetFamily(ModelFamily):
    name = "acmix_resnet"
    title = "ACmix-ResNet"
    interpolation = "bilinear"
    fixed_input_size = False  # no tensor records a resolution; the size is an export choice
    official_layout = "official-resnet"

    @property
    def model_class(self) -> type[nn.Module]:
        return ACmixResNet

    def check_input_size(self, model: nn.Module, img_size: int) -> None:
        check_resnet_input_size(model, img_size)

    def to_deploy(self, model: nn.Module, img_size: int | None) -> nn.Module:
        from ..rewrite.resnet import DeployACmixResNet

        return DeployACmixResNet(model, img_size or 224)

    def block_names(self, hparams: Mapping) -> list[str]:
        return [f"layer{stage}.{j}" for stage, depth in enumerate(hparams["layers"], start=1) for j in range(depth)]

    def classify_kernel(self, name: str, op: str, group: int) -> str:
        if "/acmix/" not in name:
            return "other"
        if op == "Conv":
            return "convolution" if group > 1 else "projection"
        return "projection" if op == "Split" else "attention"

    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return "layer1.0.conv2.rate1" in state_dict and "conv1.weight" in state_dict

    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
        sd = state_dict
        width = tensor_shape(sd, "conv1.weight")[0]
        layers = [count_indices(sd, rf"layer{i}\.(\d+)\.conv1\.weight$") for i in range(1, 5)]
        if 0 in layers:
            raise CheckpointError(f"ACmix-ResNet checkpoint with an empty stage: stage depths {layers}")
        fc_shape = tensor_shape(sd, "layer1.0.conv2.fc.weight")  # (k_conv², 3*head, 1, 1)
        k_conv = math.isqrt(fc_shape[0])
        if k_conv * k_conv != fc_shape[0] or fc_shape[1] % 3:
            raise CheckpointError(f"layer1.0.conv2.fc.weight has unexpected shape {list(fc_shape)}")
        hparams = {
            "layers": layers,
            "k_att": 7,  # no tensor records the attention window: the official value
            "head": fc_shape[1] // 3,
            "k_conv": k_conv,
            "num_classes": tensor_shape(sd, "fc.weight")[0],
            "width": width,
        }
        return ModelSpec(self.name, hparams, match_variant(self.name, hparams), 224, ("k_att", "img_size"))
