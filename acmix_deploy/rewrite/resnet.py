"""Deploy form of ACmix-ResNet: every BatchNorm folded, every ACmix block in its fast exact form.

The input size is fixed at rewrite time (ACmix's positional encoding and window masks are
constants for a given size); the batch stays free.
"""

from __future__ import annotations

from torch import nn

from ..models.acmix_resnet import ACmixResNet, Bottleneck
from ..models.input_size import check_resnet_input_size, resnet_stem_output
from .acmix_block import deploy_acmix
from .fold import fold_bn


class DeployBottleneck(nn.Module):
    def __init__(self, block: Bottleneck, height: int, width: int) -> None:
        super().__init__()
        self.conv1 = fold_bn(block.conv1, block.bn1)
        self.acmix = deploy_acmix(block.conv2, block.bn2, height, width)
        self.conv3 = fold_bn(block.conv3, block.bn3)
        self.downsample = fold_bn(block.downsample[0], block.downsample[1]) if block.downsample is not None else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.acmix(self.conv1(x).relu())
        return (self.conv3(out.relu()) + identity).relu()


class DeployACmixResNet(nn.Module):
    def __init__(self, model: ACmixResNet, img_size: int) -> None:
        super().__init__()
        check_resnet_input_size(model, img_size)
        self.img_size = img_size
        self.stem = fold_bn(model.conv1, model.bn1)
        self.maxpool = model.maxpool
        side = resnet_stem_output(img_size)
        blocks = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in layer:
                blocks.append(DeployBottleneck(block, side, side))
                side = (side + block.stride - 1) // block.stride
        self.blocks = nn.Sequential(*blocks)
        self.fc = model.fc

    def forward(self, x):
        x = self.maxpool(self.stem(x).relu())
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))
