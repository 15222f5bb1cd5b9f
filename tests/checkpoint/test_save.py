"""Our checkpoint writer: training records and class names where the official layouts keep them, read back."""

from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch

import acmix_deploy
from acmix_deploy.checkpoint import read_checkpoint, save_checkpoint
from acmix_deploy.checkpoint.save import official_payload, yacs_importable
from acmix_deploy.errors import AcmixDeployError, CheckpointError
from tests.conftest import SMALL_RESNET, SMALL_SWIN

DIGITS = [str(i) for i in range(10)]


@pytest.mark.parametrize(
    ("variant", "hparams", "epoch_key", "accuracy_key", "epoch"),
    [
        ("acmix_resnet26", SMALL_RESNET, "epoch", "best_acc1", 5),  # ResNet/main.py: epoch + 1
        ("acmix_swin_tiny", SMALL_SWIN, "epoch", "max_accuracy", 4),  # Swin: index of the last epoch
    ],
)
def test_official_layouts_record_training_and_class_names(tmp_path, variant, hparams, epoch_key, accuracy_key, epoch):
    model = acmix_deploy.build_model(variant, **hparams)
    path = save_checkpoint(model, tmp_path / "m.pth", name=variant, epochs=5, accuracy=97.77, labels=DIGITS)
    ck = read_checkpoint(path)
    assert ck.labels == DIGITS and "labels" not in ck.metadata
    assert ck.metadata[epoch_key] == epoch and ck.metadata[accuracy_key] == pytest.approx(97.77)
    with warnings.catch_warnings(), yacs_importable():
        warnings.simplefilter("ignore")
        raw = torch.load(path, weights_only=False)  # the file the official loader would see
    assert raw["labels"] == DIGITS and raw[epoch_key] == epoch
    if accuracy_key == "best_acc1":
        assert isinstance(raw["best_acc1"], torch.Tensor)  # as top1.avg is saved there


def test_safetensors_records_class_names_in_its_metadata(tmp_path):
    from safetensors import safe_open

    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    path = save_checkpoint(model, tmp_path / "m.safetensors", layout="safetensors", img_size=64, labels=DIGITS)
    with safe_open(path, framework="pt") as f:
        assert json.loads(f.metadata()["labels"]) == DIGITS
    ck = read_checkpoint(path)
    assert ck.labels == DIGITS and ck.spec.img_size == 64 and "labels" not in ck.metadata
    assert read_checkpoint(save_checkpoint(model, tmp_path / "plain.safetensors", layout="safetensors")).labels is None


def test_bad_records_are_refused_before_writing(tmp_path):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    cases = [
        ({"labels": DIGITS[:9]}, "9 labels for 10 classes"),
        ({"labels": [*DIGITS[:9], ""]}, "folder names"),
        ({"labels": [*DIGITS[:9], 9]}, "list of strings"),
        ({"labels": DIGITS, "layout": "state-dict"}, "nowhere to keep class names"),
        ({"epochs": -1}, "epochs"),
        ({"accuracy": 101.0}, "percentage"),
        ({"accuracy": True}, "percentage"),
    ]
    for options, message in cases:
        with pytest.raises(AcmixDeployError, match=message):
            save_checkpoint(model, tmp_path / "m.pth", **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "labels",
    [DIGITS[:3], [*DIGITS[:9], "a/b"], "not a list", 7, [None] * 10],
    ids=["too-few", "slash", "string", "int", "nones"],
)
def test_unusable_recorded_names_are_ignored_with_a_warning(tmp_path, labels):
    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    payload = official_payload(model, "acmix_resnet26")
    payload["labels"] = labels
    torch.save(payload, tmp_path / "odd.pth")
    with pytest.warns(UserWarning, match="class names ignored"):
        ck = read_checkpoint(tmp_path / "odd.pth")
    assert ck.labels is None and ck.spec.num_classes == 10


def test_safetensors_labels_that_are_not_json_are_ignored(tmp_path):
    from safetensors.torch import save_file

    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    save_file(model.state_dict(), tmp_path / "m.safetensors", metadata={"labels": "[0, 1"})
    with pytest.warns(UserWarning, match="class names ignored"):
        assert read_checkpoint(tmp_path / "m.safetensors").labels is None


def test_a_damaged_legacy_pickle_is_a_checkpoint_error(tmp_path):
    # SETITEMS on a set: the unpickler raises TypeError, which must not escape as such.
    (tmp_path / "set.pth").write_bytes(pickle.PROTO + b"\x02" + pickle.EMPTY_SET + b"K\x01K\x02s.")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint(tmp_path / "set.pth")
