"""Whole-model parity of the deploy rewrites: every zoo variant small, and full-size models."""

from __future__ import annotations

import pytest
import torch

from acmix_deploy.models import build_model, list_models
from acmix_deploy.rewrite import to_deploy
from tests.conftest import SMALL_RESNET, SMALL_SWIN, randomize


def small_case(name: str) -> tuple[dict, int]:
    if name.startswith("acmix_swin"):
        overrides = dict(SMALL_SWIN)
        if name == "acmix_swin_small":
            overrides["depths"] = (2, 2, 4, 2)
        return overrides, 64
    return SMALL_RESNET, 64 if name == "acmix_resnet26" else 128


def assert_parity(reference, deploy, x):
    with torch.no_grad():
        ref, out = reference(x), deploy(x)
    scale = max(1.0, ref.abs().max().item())
    assert (out - ref).abs().max().item() <= 1e-5 * scale
    assert torch.equal(out.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("name", list_models())
def test_small_variants(name, make_input):
    overrides, size = small_case(name)
    model = randomize(build_model(name, **overrides), seed=17)
    deploy = to_deploy(model, img_size=size)
    # batch 32 where the reference (an unfold per ACmix) stays cheap: the 64 px models
    for batch in (1, 2, 7, 32) if size == 64 else (1, 2, 7):
        assert_parity(model, deploy, make_input(batch, size, seed=batch))


def test_input_model_is_untouched():
    model = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = to_deploy(model, img_size=64)
    assert deploy is not model
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_swin_size_is_fixed():
    with pytest.raises(ValueError, match="fixed to 64 px"):
        to_deploy(build_model("acmix_swin_tiny", **SMALL_SWIN), img_size=96)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), [("acmix_resnet50", 224), ("acmix_swin_tiny", 224)])
def test_full_size(name, size, make_input):
    model = randomize(build_model(name), seed=19)
    assert_parity(model, to_deploy(model, img_size=size), make_input(2, size))
