"""Swin-ACmix against the independent functional restatement of the official forward."""

from __future__ import annotations

import pytest
import torch

from acmix_deploy.models import build_model
from tests.conftest import SMALL_SWIN, randomize
from tests.reference import official_forward as ref

TOL = 1e-5


def _reference(model, x):
    hp = model.hparams()
    return ref.swin_forward(
        model.state_dict(),
        x,
        patch_size=hp["patch_size"],
        window_size=hp["window_size"],
        embed_dim=hp["embed_dim"],
        depths=hp["depths"],
        num_heads=hp["num_heads"],
        mlp_ratio=hp["mlp_ratio"],
    )


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("acmix_swin_tiny", SMALL_SWIN),  # last stage (2 px) smaller than the window
        ("acmix_swin_small", {**SMALL_SWIN, "depths": (2, 2, 4, 2)}),
        ("acmix_swin_tiny", {"embed_dim": 24, "num_heads": (1, 2, 2, 4), "num_classes": 7}),  # 224 px, window 7
    ],
)
def test_swin_matches_official(name, overrides, make_input):
    model = randomize(build_model(name, **overrides), seed=11)
    x = make_input(3, model.img_size)
    with torch.no_grad():
        ours = model(x)
        theirs = _reference(model, x)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= TOL * max(1.0, theirs.abs().max().item())
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


def test_buffers_equal_official_ones():
    model = build_model("acmix_swin_tiny")
    sd = model.state_dict()
    assert torch.equal(sd["layers.0.blocks.0.attn.relative_position_index"], ref.relative_position_index(7))
    assert torch.equal(sd["layers.0.blocks.1.attn_mask"], ref.shift_attn_mask(56, 56, 7, 3))
    assert torch.equal(sd["layers.2.blocks.5.attn_mask"], ref.shift_attn_mask(14, 14, 7, 3))
    assert "layers.0.blocks.0.attn_mask" not in sd  # unshifted blocks have none, as in the official code
    assert "layers.3.blocks.1.attn_mask" not in sd  # 7 px stage = one window: no shift
    assert "layers.0.blocks.0.attn.dep_conv.bias" not in sd and "layers.0.blocks.0.attn.fc.bias" in sd


def test_wrong_input_size_is_a_clear_error(make_input):
    model = build_model("acmix_swin_tiny", **SMALL_SWIN)
    with pytest.raises(ValueError, match="built for"):
        model(make_input(1, 96))


@pytest.mark.slow
def test_full_swin_tiny_matches_official(make_input):
    model = randomize(build_model("acmix_swin_tiny"), seed=13)
    x = make_input(2, 224)
    with torch.no_grad():
        ours = model(x)
        theirs = _reference(model, x)
    assert (ours - theirs).abs().max().item() <= TOL * max(1.0, theirs.abs().max().item())
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
