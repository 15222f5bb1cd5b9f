"""The family registry: every stage's family knowledge comes from one spec per family."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acmix_deploy.checkpoint import detect_spec, resolve_model, save_checkpoint
from acmix_deploy.errors import InputSizeError
from acmix_deploy.families import all_families, family_names, family_of, get_family
from acmix_deploy.models import build_model, get_entry, list_models
from acmix_deploy.rewrite import to_deploy
from tests.conftest import SMALL_RESNET, SMALL_SWIN

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"acmix_resnet26": SMALL_RESNET, "acmix_swin_tiny": SMALL_SWIN}


def test_every_registered_variant_has_a_family():
    assert family_names() == ["acmix_resnet", "acmix_swin"]
    for name in list_models():
        assert get_entry(name).family in family_names()
    with pytest.raises(KeyError, match="known: acmix_resnet, acmix_swin"):
        get_family("vit")


@pytest.mark.parametrize("name", list(SMALL))
def test_spec_answers_for_its_models(name):
    model = build_model(name, **SMALL[name])
    family = family_of(model)
    assert family.name == get_entry(name).family and family.owns(model)
    assert not any(other.owns(model) for other in all_families() if other is not family)
    detected = detect_spec(model.state_dict())
    assert detected.family == family.name
    assert family.preprocessing(64).interpolation == family.interpolation
    assert len(family.block_names(detected.hparams)) == len(list(to_deploy(model, 64).blocks))


def test_fixed_and_free_input_sizes():
    resnet, swin = get_family("acmix_resnet"), get_family("acmix_swin")
    r = build_model("acmix_resnet26", **SMALL_RESNET)
    s = build_model("acmix_swin_tiny", **SMALL_SWIN)
    assert resnet.resolve_img_size(r, None, None) == 224
    assert resnet.resolve_img_size(r, None, 96) == 96 and resnet.resolve_img_size(r, 64, 96) == 64
    assert swin.resolve_img_size(s, None, None) == 64 and swin.resolve_img_size(s, 64, 224) == 64
    with pytest.raises(ValueError, match="fixed to 64 px"):
        swin.resolve_img_size(s, 96, None)
    with pytest.raises(ValueError, match="odd"):
        resnet.resolve_img_size(r, 72, None)
    assert resnet.size_overrides(96) == {} and swin.size_overrides(96) == {"img_size": 96}


def test_resolve_model_applies_the_family_rule(tmp_path):
    r = save_checkpoint(build_model("acmix_resnet26", **SMALL_RESNET), tmp_path / "r.pth", img_size=64)
    resolved = resolve_model(r)
    assert resolved.img_size == 64 and resolved.family.name == "acmix_resnet"
    assert resolved.source["type"] == "checkpoint" and resolved.checkpoint is not None
    assert resolve_model(r, 96).img_size == 96
    s = save_checkpoint(build_model("acmix_swin_tiny", **SMALL_SWIN), tmp_path / "s.pth")
    with pytest.raises(InputSizeError, match="fixed to 64"):
        resolve_model(s, 32)


def test_kernel_branches():
    resnet, swin = get_family("acmix_resnet"), get_family("acmix_swin")
    assert resnet.classify_kernel("/blocks.0/acmix/Conv", "Conv", 16) == "convolution"
    assert resnet.classify_kernel("/blocks.0/acmix/MatMul", "MatMul", 1) == "attention"
    assert resnet.classify_kernel("/blocks.0/conv1/Conv", "Conv", 1) == "other"
    assert swin.classify_kernel("/blocks.0/attn/dep_conv/Conv", "Conv", 4) == "convolution"
    assert swin.classify_kernel("/blocks.0/mlp/fc1/MatMul", "MatMul", 1) == "mlp"


def test_no_family_name_branch_outside_the_family_modules_and_checkpoint_detection():
    """Adding a family touches its module and the registry; nobody else compares family names."""
    allowed = {"acmix_deploy/families", "acmix_deploy/checkpoint", "acmix_deploy/models"}
    pattern = re.compile(r"""["']acmix_(resnet|swin)["']""")  # a family name as a literal: a comparison or a table
    offenders = []
    for top in ("acmix_deploy", "exporters", "runtimes", "cli.py"):
        for path in sorted((ROOT / top).rglob("*.py")) if top != "cli.py" else [ROOT / top]:
            rel = path.relative_to(ROOT).as_posix()
            if path.is_symlink() or any(rel.startswith(a) for a in allowed):
                continue
            lines = path.read_text().splitlines()
            offenders += [f"{rel}:{i}" for i, line in enumerate(lines, 1) if pattern.search(line)]
    assert not offenders, offenders
