"""Hostile and broken checkpoints through the Python API and the CLI (`inspect`, `export`)."""

from __future__ import annotations

import warnings

import pytest
import torch

import acmix_deploy
from acmix_deploy.errors import CheckpointError, UnsafeCheckpointError
from tests.test_cli import run_cli

from .conftest import assert_clean_error, run_cli_inproc

CASES = [
    "truncated.pth",
    "truncated_legacy.pth",
    "zero.pth",
    "text.pth",
    "notckpt.pth",
    "plain_resnet.pth",
    "keys.pth",
    "shapes.pth",
    "nan.pth",
    "evil_system_zip.pth",
    "evil_system_legacy.pth",
    "evil_write_zip.pth",
    "evil_write_legacy.pth",
]


@pytest.mark.parametrize("name", CASES)
def test_python_api(ckpt_corpus, name):
    case = ckpt_corpus[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.api is None:
            model = acmix_deploy.load_checkpoint(case.path)
            assert isinstance(model, torch.nn.Module)
        else:
            expected = UnsafeCheckpointError if case.sentinel else CheckpointError
            with pytest.raises(expected) as info:
                acmix_deploy.load_checkpoint(case.path)
            assert case.api in str(info.value)
            assert "\n" not in str(info.value)
    if case.warns:
        assert any(case.warns in str(w.message) for w in caught), [str(w.message) for w in caught]
    if case.sentinel is not None:
        assert not case.sentinel.exists(), "the pickle ran code"
        assert "nothing was executed" in str(info.value)


@pytest.mark.parametrize("name", CASES)
def test_cli_inspect(ckpt_corpus, name):
    case = ckpt_corpus[name]
    code, fragment = case.inspect
    with warnings.catch_warnings(record=True) as caught:  # the real process prints them on stderr
        warnings.simplefilter("always")
        proc = run_cli_inproc("inspect", str(case.path))
    if code == 0:
        assert proc.returncode == 0, proc.stderr
        assert "acmix_resnet" in proc.stdout
        if fragment:
            assert any(fragment in str(w.message) for w in caught)
    else:
        assert_clean_error(proc, code, fragment)
    if case.sentinel is not None:
        assert not case.sentinel.exists()


@pytest.mark.parametrize("name", [n for n in CASES if n != "nan.pth"])
def test_cli_export(ckpt_corpus, tmp_path, name):
    case = ckpt_corpus[name]
    out = tmp_path / "out"
    proc = run_cli_inproc("export", str(case.path), "-o", str(out), "--img-size", "64", "--skip-latency")
    assert_clean_error(proc, *case.export)
    assert not list(out.glob("*.onnx")) if out.exists() else True
    if case.sentinel is not None:
        assert not case.sentinel.exists()


@pytest.mark.parametrize(("command", "name"), [("inspect", "evil_write_legacy.pth"), ("export", "evil_system_zip.pth")])
def test_real_entry_point_refuses_code_executing_pickles(ckpt_corpus, tmp_path, command, name):
    """The same refusal through `python -m cli` in a subprocess (the in-process runner is equivalent)."""
    case = ckpt_corpus[name]
    extra = ["-o", str(tmp_path)] if command == "export" else []
    assert_clean_error(run_cli(command, str(case.path), *extra), 1, "refused")
    assert not case.sentinel.exists()


def test_refusal_names_every_unsafe_global(ckpt_corpus):
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system") as info:
        acmix_deploy.read_checkpoint(ckpt_corpus["evil_system_zip.pth"].path)
    assert "--trust-pickle" in str(info.value)


def _scalar_weight(sd):
    sd["conv1.weight"] = torch.zeros(())


def _flat_fc(sd):
    sd["layer1.0.conv2.fc.weight"] = torch.zeros(9)


def _swin_table_1d(sd):
    sd["layers.0.blocks.0.attn.relative_position_bias_table"] = torch.zeros(49)


def _swin_patch_2d(sd):
    sd["patch_embed.proj.weight"] = torch.zeros(24, 48)


DEGENERATE = {
    "resnet_conv1_scalar": ("acmix_resnet26", _scalar_weight),
    "resnet_fc_1d": ("acmix_resnet26", _flat_fc),
    "swin_bias_table_1d": ("acmix_swin_tiny", _swin_table_1d),
    "swin_patch_embed_2d": ("acmix_swin_tiny", _swin_patch_2d),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_wrong_rank_tensors_used_for_detection_are_refused_clearly(tmp_path, case):
    from tests.conftest import SMALL_RESNET, SMALL_SWIN

    name, mutate = DEGENERATE[case]
    overrides = SMALL_RESNET if "resnet" in name else SMALL_SWIN
    sd = acmix_deploy.build_model(name, **overrides).state_dict()
    mutate(sd)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="shape"):
        acmix_deploy.read_checkpoint(tmp_path / "bad.pth")
