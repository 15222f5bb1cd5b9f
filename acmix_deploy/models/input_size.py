"""Which input sizes a model can run, told before export instead of as a reshape error deep inside."""

from __future__ import annotations

from .acmix_resnet import ACmixResNet


def resnet_stem_output(img_size: int) -> int:
    """Side of the map entering layer1: 7x7/2 stem conv (padding 3), then 3x3/2 max-pool (padding 1)."""
    side = (img_size - 1) // 2 + 1
    return (side - 1) // 2 + 1


def check_resnet_input_size(model: ACmixResNet, img_size: int) -> None:
    """ACmix-ResNet's rule: every stage must see more pixels than the reflect padding, halved evenly."""
    side = resnet_stem_output(img_size)
    pad = (model.k_att - 1) // 2
    for stage, depth in enumerate(model.layers_cfg):
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            if side <= pad:
                raise ValueError(
                    f"img_size {img_size} is too small: layer{stage + 1} block {block} sees {side} px, and the "
                    f"{model.k_att}x{model.k_att} reflect padding needs more than {pad}"
                )
            if stride == 2 and side % 2:
                raise ValueError(
                    f"img_size {img_size}: layer{stage + 1} gets an odd {side} px map, which the official strided "
                    "ACmix cannot halve; use a multiple of 32 px"
                )
            side //= stride
