"""Parity of the ACmix-ResNet deploy block against the reference ACmix (+ BatchNorm), in torch and ONNX Runtime."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from acmix_deploy.models.acmix_resnet import ACmix
from acmix_deploy.rewrite.acmix_block import DeployACmix, default_block
from acmix_deploy.runtimes.onnxruntime import ort_session
from tests.conftest import randomize

TOL = 1e-5


def reference_and_deploy(cin, cout, stride, side, with_bn=True, **kwargs):
    acmix = randomize(ACmix(cin, cout, stride=stride), seed=side + stride)
    bn = randomize(nn.BatchNorm2d(cout), seed=3) if with_bn else None

    def reference(x):
        out = acmix(x)
        return bn(out) if bn is not None else out

    return reference, DeployACmix(acmix, bn, side, side, **kwargs).eval()


def assert_close(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "side", "with_bn"),
    [
        (16, 16, 1, 56, True),  # blocked halo attention, 8 px blocks
        (32, 32, 2, 56, True),  # strided, 4 px output blocks
        (16, 16, 2, 28, True),  # strided, 7 px output blocks
        (16, 32, 1, 28, False),  # 7 px blocks
        (32, 32, 1, 14, True),  # one block = the whole map
        (32, 32, 2, 8, True),  # strided, whole map
        (64, 64, 1, 7, True),  # odd map, whole map
        (16, 16, 1, 4, True),  # smallest map reflect padding allows
    ],
)
def test_deploy_block_matches_reference(cin, cout, stride, side, with_bn):
    reference, deploy = reference_and_deploy(cin, cout, stride, side, with_bn)
    for batch in (1, 2, 3, 7):
        x = torch.randn(batch, cin, side, side, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            assert_close(deploy(x), reference(x))


@pytest.mark.parametrize(
    ("side", "block", "conv_merge"),
    [(32, 8, 1), (32, 8, 2), (32, 8, 4), (32, 16, 4), (28, 7, 4), (28, 14, 2), (28, 28, 1),
     (32, 4, 4), (28, 4, 4), (28, 2, 4), (16, 1, 4)],  # halos over 2, 2, 3 and 6 neighbour tiles
)  # fmt: skip
def test_every_block_size_and_group_merge_is_exact(side, block, conv_merge):
    reference, deploy = reference_and_deploy(16, 16, 1, side, block=block, conv_merge=conv_merge)
    x = torch.randn(2, 16, side, side, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert_close(deploy(x), reference(x))


def test_pruned_channels_keep_the_function():
    """rate1 = 0 (or a zero BatchNorm scale) cannot be divided out of v: the output is scaled instead."""
    acmix = randomize(ACmix(16, 16), seed=2)
    bn = randomize(nn.BatchNorm2d(16), seed=3)
    with torch.no_grad():
        bn.weight[3] = 0.0
    deploy = DeployACmix(acmix, bn, 16, 16).eval()
    assert deploy.v_post is not None
    x = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(deploy(x), bn(acmix(x)))


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "side", "block"),
    [(16, 16, 1, 32, None), (16, 32, 2, 28, None), (32, 32, 1, 7, None), (16, 16, 1, 28, 4)],
)
def test_exported_block_matches_reference_in_onnxruntime(cin, cout, stride, side, block):
    """The ONNX of the block alone, dynamic batch, run at batches 1/2/7/32 against the reference."""
    reference, deploy = reference_and_deploy(cin, cout, stride, side, block=block)
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            deploy,
            (torch.randn(2, cin, side, side),),
            buffer,
            dynamo=False,
            opset_version=20,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    session = ort_session(buffer.getvalue(), threads=1)
    for batch in (1, 2, 7, 32):
        x = torch.randn(batch, cin, side, side, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = reference(x)
        out = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        assert_close(out, ref)
        assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize(("stride", "side"), [(1, 14), (1, 7), (2, 8), (1, 4)])
def test_one_block_reads_the_unpadded_map_with_the_padding_in_its_mask(stride, side):
    """Each query's window of 7x7 reflect-padded positions, as counts of map keys: e^mask sums to 49."""
    reference, deploy = reference_and_deploy(16, 16, stride, side)
    assert deploy.single and deploy.mask.shape == ((side // stride) ** 2, side * side)
    counts = torch.exp(deploy.mask.double()).where(deploy.mask > -1e3, torch.zeros((), dtype=torch.float64))
    assert torch.allclose(counts.sum(1), torch.full((counts.shape[0],), 49.0, dtype=torch.float64), atol=1e-5)
    # a map row sits in a window at most twice when the map is at least a window wide (4 px: three times)
    allowed = {0, 1, 2, 4} if side >= 7 else {0, 1, 2, 3, 4, 6, 9}
    assert {round(c) for c in counts.unique().tolist()} <= allowed
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(deploy, (torch.randn(1, 16, side, side),), buffer, dynamo=False, opset_version=20)
    import onnx

    assert "Pad" not in {n.op_type for n in onnx.load_from_string(buffer.getvalue()).graph.node}
    x = torch.randn(3, 16, side, side, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out, ref = deploy(x), reference(x)
    assert_close(out, ref)
    assert (out.flatten(1).argmax(1) == ref.flatten(1).argmax(1)).all()


def test_block_sizes_follow_measurements():
    assert default_block(56, 1) == 8
    assert default_block(28, 2) == 4
    assert default_block(14, 2) == 7
    assert default_block(7, 2) == 7
    assert default_block(28, 1) == 7
    assert default_block(14, 1) == 14
    assert default_block(7, 1) == 7


def test_strided_odd_map_is_refused():
    with pytest.raises(ValueError, match="even"):
        DeployACmix(ACmix(8, 8, stride=2), None, 9, 9)
