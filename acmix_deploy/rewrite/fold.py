"""Exact algebraic folds shared by the deploy rewrites (BatchNorm into convs, scales into weights)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``y = x * scale + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing ``bn(conv(x))`` in eval mode."""
    scale, shift = bn_scale_shift(bn)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    )
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(bias * scale + shift)
    return fused


@torch.no_grad()
def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight.copy_(weight)
    if bias is not None:
        layer.bias.copy_(bias)
    return layer


@torch.no_grad()
def conv1x1_from(weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1) -> nn.Conv2d:
    """A 1x1 Conv2d with the given (out, in) weight matrix."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, stride=stride, bias=bias is not None)
    conv.weight.copy_(weight.reshape(weight.shape[0], weight.shape[1], 1, 1))
    if bias is not None:
        conv.bias.copy_(bias)
    return conv
