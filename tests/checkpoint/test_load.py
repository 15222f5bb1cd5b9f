"""Checkpoint round trips in every layout, detection from shapes, and the refusal cases."""

from __future__ import annotations

import os
import sys
import zipfile

import pytest
import torch

import acmix_deploy
from acmix_deploy.checkpoint import read_checkpoint, save_checkpoint
from acmix_deploy.checkpoint.save import official_payload, yacs_importable
from acmix_deploy.errors import CheckpointError, UnsafeCheckpointError
from tests.conftest import SMALL_RESNET, SMALL_SWIN, randomize

CASES = [("acmix_resnet26", SMALL_RESNET, 64), ("acmix_swin_tiny", SMALL_SWIN, 64)]


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def model_case(request):
    name, overrides, size = request.param
    return name, randomize(acmix_deploy.build_model(name, **overrides), seed=21), size


@pytest.mark.parametrize("layout", ["official", "state-dict", "safetensors"])
def test_round_trip_reproduces_logits(tmp_path, model_case, layout, make_input):
    name, model, size = model_case
    path = save_checkpoint(
        model, tmp_path / f"ckpt.{'safetensors' if layout == 'safetensors' else 'pth'}", layout=layout, name=name
    )
    loaded = acmix_deploy.load_checkpoint(path)
    x = make_input(2, size)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() == 0.0
    assert not loaded.training


def test_official_resnet_layout_is_read_with_metadata(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet38", **SMALL_RESNET)
    payload = official_payload(model, "acmix_resnet38", epoch=42)
    assert all(k.startswith("module.") for k in payload["state_dict"])
    payload["best_acc1"] = torch.tensor(77.5)
    torch.save(payload, tmp_path / "model_best.pth.tar")
    ck = read_checkpoint(tmp_path / "model_best.pth.tar")
    assert ck.layout == "official-resnet" and ck.file_format == "torch-zip"
    assert ck.metadata["epoch"] == 42 and ck.metadata["best_acc1"] == pytest.approx(77.5)
    assert ck.metadata["arch"] == "acmix_resnet38"
    assert ck.spec.hparams["layers"] == [2, 3, 5, 2]
    assert ck.spec.hparams["width"] == 16 and ck.spec.num_classes == 10 and ck.spec.hparams["head"] == 4


def test_official_swin_layout_reads_yacs_config_without_yacs(tmp_path):
    model = acmix_deploy.build_model("acmix_swin_tiny", **SMALL_SWIN)
    save_checkpoint(model, tmp_path / "ckpt_epoch_9.pth", layout="official", name="acmix_swin_tiny")
    raw = zipfile.ZipFile(tmp_path / "ckpt_epoch_9.pth").read(
        next(n for n in zipfile.ZipFile(tmp_path / "ckpt_epoch_9.pth").namelist() if n.endswith("data.pkl"))
    )
    assert b"yacs.config" in raw and b"CfgNode" in raw  # the file names yacs exactly like an official one
    assert "yacs" not in sys.modules
    ck = read_checkpoint(tmp_path / "ckpt_epoch_9.pth")
    assert "yacs" not in sys.modules
    assert ck.layout == "official-swin"
    assert ck.metadata["config"]["MODEL"]["SWIN"]["DEPTHS"] == [2, 2, 6, 2]
    assert ck.metadata["config"]["DATA"]["IMG_SIZE"] == 64
    assert set(ck.metadata["training_state"]) == {"optimizer", "lr_scheduler"}


def test_legacy_torch_format(tmp_path, make_input):
    model = randomize(acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET), seed=2)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    ck = read_checkpoint(tmp_path / "old.pth")
    assert ck.file_format == "torch-legacy"
    x = make_input(1, 64)
    with torch.no_grad():
        assert torch.equal(ck.to_model()(x), model(x))


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        (SMALL_SWIN, {"img_size": 64, "window_size": 4, "depths": [2, 2, 6, 2], "num_heads": [1, 2, 2, 4]}),
        ({"embed_dim": 32, "num_heads": (2, 2, 4, 4), "depths": (2, 2, 2, 2)}, {"img_size": 224, "window_size": 7}),
        ({**SMALL_SWIN, "img_size": 128, "window_size": 8, "mlp_ratio": 2.0}, {"img_size": 128, "mlp_ratio": 2.0}),
    ],
)
def test_swin_hyperparameters_detected_from_shapes(tmp_path, overrides, expect):
    model = acmix_deploy.build_model("acmix_swin_tiny", **overrides)
    save_checkpoint(model, tmp_path / "s.safetensors", layout="safetensors")
    spec = read_checkpoint(tmp_path / "s.safetensors").spec
    for key, value in expect.items():
        assert spec.hparams[key] == value
    assert spec.assumed == ()


def test_variant_names_and_assumed_knobs(tmp_path):
    save_checkpoint(acmix_deploy.build_model("acmix_resnet50"), tmp_path / "r50.pth", layout="state-dict")
    spec = read_checkpoint(tmp_path / "r50.pth").spec
    assert spec.variant == "acmix_resnet50"
    assert "k_att" in spec.assumed  # no tensor records the attention window
    assert spec.with_overrides(k_att=5).hparams["k_att"] == 5
    assert "k_att" not in spec.with_overrides(k_att=5).assumed


def test_swin_buffers_are_checked_against_the_configuration(tmp_path):
    save_checkpoint(acmix_deploy.build_model("acmix_swin_tiny", **SMALL_SWIN), tmp_path / "s.pth", layout="state-dict")
    with pytest.raises(CheckpointError, match=r"buffer|shape"):
        acmix_deploy.load_checkpoint(tmp_path / "s.pth", img_size=128)


class _Sentinel:
    """Unpickling this runs os.system: the loader must refuse it before anything runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_executes_code_is_refused(tmp_path, legacy):
    sentinel = tmp_path / "PWNED"
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    payload = {"state_dict": model.state_dict(), "epoch": 1, "hook": _Sentinel(sentinel)}
    torch.save(payload, tmp_path / "evil.pth", _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint(tmp_path / "evil.pth")
    assert not sentinel.exists()


class _Harmless:
    def __init__(self):
        self.note = "custom object"


def test_trust_pickle_opt_in_loads_custom_objects(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    torch.save({"state_dict": model.state_dict(), "extra": _Harmless()}, tmp_path / "c.pth")
    with pytest.raises(UnsafeCheckpointError, match="_Harmless"):
        read_checkpoint(tmp_path / "c.pth")
    assert read_checkpoint(tmp_path / "c.pth", trust_pickle=True).spec.family == "acmix_resnet"


def test_bad_files_give_clear_errors(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    good = save_checkpoint(model, tmp_path / "good.pth", layout="official")
    data = good.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_text("hello, I am not a checkpoint\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    st = save_checkpoint(model, tmp_path / "m.safetensors", layout="safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(st[: len(st) - 100])
    cases = {
        "trunc.pth": "corrupt or truncated",
        "text.pth": "not a checkpoint",
        "empty.pth": "empty file",
        "trunc.safetensors": "outside the file",
        "missing.pth": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            read_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)


def test_other_architectures_are_named(tmp_path):
    plain_resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv2.weight": torch.zeros(64, 64, 3, 3)}
    torch.save(plain_resnet, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="plain ResNet"):
        read_checkpoint(tmp_path / "resnet.pth")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        read_checkpoint(tmp_path / "other.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        read_checkpoint(tmp_path / "list.pth")


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    sd = model.state_dict()
    del sd["layer3.1.conv2.rate2"]
    sd["layer3.1.conv2.extra"] = torch.zeros(1)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): layer3.1.conv2.rate2.*unexpected keys \(1\)"):
        acmix_deploy.load_checkpoint(tmp_path / "broken.pth")
    save_checkpoint(model, tmp_path / "ok.pth", layout="state-dict")
    wider = acmix_deploy.build_model("acmix_resnet26", width=32, num_classes=10)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        acmix_deploy.load_checkpoint(tmp_path / "ok.pth", model=wider)


def test_non_finite_weights_warn(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    save_checkpoint(model, tmp_path / "nan.pth", layout="state-dict")
    with pytest.warns(UserWarning, match="non-finite"):
        read_checkpoint(tmp_path / "nan.pth")


def test_yacs_helper_restores_sys_modules():
    with yacs_importable() as cls:
        assert sys.modules["yacs.config"].CfgNode is cls
    assert "yacs" not in sys.modules and "yacs.config" not in sys.modules


@pytest.mark.parametrize("layout", ["official", "safetensors"])
def test_resnet_input_size_recorded_by_our_writer(tmp_path, layout):
    """No ACmix-ResNet tensor records the resolution; our writers store it and the reader uses it."""
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    path = save_checkpoint(model, tmp_path / "r.pth", layout=layout, img_size=96)
    spec = read_checkpoint(path).spec
    assert spec.img_size == 96 and "img_size" not in spec.assumed and "k_att" in spec.assumed
    plain = read_checkpoint(save_checkpoint(model, tmp_path / "p.pth", layout=layout)).spec
    assert plain.img_size == 224 and "img_size" in plain.assumed
    with pytest.raises(acmix_deploy.AcmixDeployError, match="img_size"):
        save_checkpoint(model, tmp_path / "bad.pth", img_size=0)


@pytest.mark.parametrize("bogus", ["big", -5, 10**9, 3.5, True])
def test_bogus_recorded_input_size_is_ignored(tmp_path, bogus):
    payload = official_payload(acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET), "acmix_resnet26")
    payload["img_size"] = bogus
    torch.save(payload, tmp_path / "b.pth")
    spec = read_checkpoint(tmp_path / "b.pth").spec
    assert spec.img_size == 224 and "img_size" in spec.assumed
