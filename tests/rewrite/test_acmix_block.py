"""Parity of the ACmix-ResNet deploy block against the reference ACmix (+ BatchNorm)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from acmix_deploy.models.acmix_resnet import ACmix
from acmix_deploy.rewrite.acmix_block import DeployACmix, default_block
from tests.conftest import randomize

TOL = 1e-5


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "side", "with_bn"),
    [
        (16, 16, 1, 56, True),  # blocked halo attention, 8 px blocks
        (32, 32, 2, 56, True),  # strided, 7 px output blocks
        (16, 32, 1, 28, False),  # 14 px blocks
        (32, 32, 1, 14, True),  # one block = the whole map
        (32, 32, 2, 8, True),  # strided, whole map
        (64, 64, 1, 7, True),  # odd map, whole map
        (16, 16, 1, 4, True),  # smallest map reflect padding allows
    ],
)
def test_deploy_block_matches_reference(cin, cout, stride, side, with_bn):
    acmix = randomize(ACmix(cin, cout, stride=stride), seed=side + stride)
    bn = randomize(nn.BatchNorm2d(cout), seed=3) if with_bn else None
    deploy = DeployACmix(acmix, bn, side, side).eval()
    for batch in (1, 3):
        x = torch.randn(batch, cin, side, side, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = acmix(x)
            ref = bn(ref) if bn is not None else ref
            out = deploy(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())


def test_block_sizes_follow_measurements():
    assert default_block(56, 1) == 8
    assert default_block(28, 2) == 7
    assert default_block(28, 1) == 7
    assert default_block(14, 1) == 14
    assert default_block(7, 1) == 7


def test_strided_odd_map_is_refused():
    with pytest.raises(ValueError, match="even"):
        DeployACmix(ACmix(8, 8, stride=2), None, 9, 9)
