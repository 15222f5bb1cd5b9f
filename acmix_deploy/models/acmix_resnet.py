"""ACmix-ResNet: Bottleneck v1.5 ResNets whose 3x3 convolution is an ACmix module.

Implements the model of "On the Integration of Self-Attention and Convolution"
(Pan et al., CVPR 2022) with the official implementation's state-dict keys, shapes
and numerics (LeapLabTHU/ACmix, ``ResNet/test_bottleneck.py`` and
``ResNet/ResNet_ImageNet.py``), so official checkpoints load unchanged.

Differences from the official code, none of which changes a number:
- the coordinate grid is built on the input's device and dtype (the official
  ``position()`` hard-codes ``.cuda()``);
- ``width`` scales the stem and stage widths, so tests can build narrow models.

This is the *reference* form: it is what training produced. ``acmix_deploy.rewrite``
turns it into the deploy form that exports and runs fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(height: int, width: int, *, device=None, dtype=None) -> torch.Tensor:
    """The (1, 2, H, W) grid of ACmix's positional encoding: x then y, each in [-1, 1]."""
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    grid_x = xs.unsqueeze(0).expand(height, width)
    grid_y = ys.unsqueeze(1).expand(height, width)
    return torch.stack([grid_x, grid_y]).unsqueeze(0)


def shift_kernel(kernel_conv: int, out_planes: int) -> torch.Tensor:
    """ACmix's initial ``dep_conv`` weight: each of the k² input channels of a group is a one-pixel shift."""
    kernel = torch.zeros(kernel_conv * kernel_conv, kernel_conv, kernel_conv)
    for i in range(kernel_conv * kernel_conv):
        kernel[i, i // kernel_conv, i % kernel_conv] = 1.0
    return kernel.repeat(out_planes, 1, 1, 1)


class ACmix(nn.Module):
    """Self-attention over a k_att x k_att window and a shift-convolution, sharing one q/k/v projection.

    Output: ``rate1 * attention + rate2 * convolution``. Parameter names follow the official code.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_att: int = 7,
        head: int = 4,
        kernel_conv: int = 3,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        if out_planes % head:
            raise ValueError(f"out_planes ({out_planes}) must be divisible by head ({head})")
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.head = head
        self.kernel_att = kernel_att
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.head_dim = out_planes // head
        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))

        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv3 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv_p = nn.Conv2d(2, self.head_dim, kernel_size=1)
        self.padding_att = (dilation * (kernel_att - 1) + 1) // 2

        self.fc = nn.Conv2d(3 * head, kernel_conv * kernel_conv, kernel_size=1, bias=False)
        # The official reset_parameters() replaces dep_conv.bias with None: checkpoints hold no such key.
        # Its padding is hard-coded to 1 there, whatever kernel_conv is.
        self.dep_conv = nn.Conv2d(
            kernel_conv * kernel_conv * self.head_dim,
            out_planes,
            kernel_size=kernel_conv,
            bias=False,
            groups=self.head_dim,
            padding=1,
            stride=stride,
        )
        with torch.no_grad():
            self.dep_conv.weight.copy_(shift_kernel(kernel_conv, out_planes))

    def _windows(self, t: torch.Tensor) -> torch.Tensor:
        """Reflect-pad and unfold: (N, C, H, W) -> (N, C, k_att², H_out, W_out)."""
        n, c = t.shape[:2]
        padded = F.pad(t, (self.padding_att,) * 4, mode="reflect")
        cols = F.unfold(padded, kernel_size=self.kernel_att, padding=0, stride=self.stride)
        h_out = (padded.shape[-2] - self.kernel_att) // self.stride + 1
        w_out = (padded.shape[-1] - self.kernel_att) // self.stride + 1
        return cols.view(n, c, self.kernel_att * self.kernel_att, h_out, w_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        scaling = float(self.head_dim) ** -0.5
        b, _, h, w = q.shape
        heads, hd = self.head, self.head_dim

        # Attention branch.
        pe = self.conv_p(coordinate_grid(h, w, device=x.device, dtype=x.dtype))
        q_att = q.view(b * heads, hd, h, w) * scaling
        k_att = k.view(b * heads, hd, h, w)
        v_att = v.view(b * heads, hd, h, w)
        q_pe = pe
        if self.stride > 1:
            q_att = q_att[:, :, :: self.stride, :: self.stride]
            q_pe = pe[:, :, :: self.stride, :: self.stride]
        h_out, w_out = q_att.shape[-2:]
        window_k = self._windows(k_att)
        window_pe = self._windows(pe)
        logits = (q_att.unsqueeze(2) * (window_k + q_pe.unsqueeze(2) - window_pe)).sum(1)
        attn = torch.softmax(logits, dim=1)
        window_v = self._windows(v_att)
        out_att = (attn.unsqueeze(1) * window_v).sum(2).view(b, self.out_planes, h_out, w_out)

        # Convolution branch: fc mixes the 3*head q/k/v heads into k_conv² feature maps per head channel.
        qkv_heads = torch.cat(
            [t.view(b, heads, hd, h * w) for t in (q, k, v)],
            dim=1,
        )
        f_all = self.fc(qkv_heads)
        f_conv = f_all.permute(0, 2, 1, 3).reshape(b, -1, h, w)
        out_conv = self.dep_conv(f_conv)
        return self.rate1 * out_att + self.rate2 * out_conv


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the middle layer) with ACmix as ``conv2``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        k_att: int,
        head: int,
        k_conv: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = ACmix(planes, planes, k_att, head, k_conv, stride=stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ACmixResNet(nn.Module):
    """ACmix-ResNet classifier (official key names: ``conv1``, ``bn1``, ``layer1..4``, ``fc``)."""

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        *,
        k_att: int = 7,
        head: int = 4,
        k_conv: int = 3,
        num_classes: int = 1000,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 stage depths, got {list(layers)}")
        self.layers_cfg = tuple(int(n) for n in layers)
        self.k_att, self.head, self.k_conv = k_att, head, k_conv
        self.num_classes, self.width = num_classes, width
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0], stride=1)
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * Bottleneck.expansion, num_classes)

        # As in the official code, this also re-initialises every ACmix conv (dep_conv's shift kernel included).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def acmix_modules(self) -> list[ACmix]:
        return [m for m in self.modules() if isinstance(m, ACmix)]

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, self.k_att, self.head, self.k_conv, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, self.k_att, self.head, self.k_conv) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def hparams(self) -> dict:
        """The constructor arguments, as recorded in manifests and detected from checkpoints."""
        return {
            "layers": list(self.layers_cfg),
            "k_att": self.k_att,
            "head": self.head,
            "k_conv": self.k_conv,
            "num_classes": self.num_classes,
            "width": self.width,
        }
