"""The shipped demo checkpoints record what they are: epochs trained, held-out accuracy, class names."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from acmix_deploy.checkpoint import read_checkpoint
from acmix_deploy.checkpoint.save import recorded_epoch
from acmix_deploy.labels import read_labels

DEMO = Path(str(resources.files("acmix_deploy").joinpath("data/demo")))
README = json.loads((DEMO / "README.json").read_text())


@pytest.mark.parametrize(("key", "accuracy_key"), [("resnet", "best_acc1"), ("swin", "max_accuracy")])
def test_demo_checkpoint_records_match_its_training(key, accuracy_key):
    entry = README["models"][key]
    ck = read_checkpoint(DEMO / entry["file"])
    assert ck.labels == read_labels(DEMO / "digits_labels.txt") == [str(i) for i in range(10)]
    assert ck.metadata[accuracy_key] == pytest.approx(entry["held_out_top1_percent"], abs=1e-4)
    assert ck.metadata["epoch"] == recorded_epoch(ck.to_model(), entry["hyperparameters"]["epochs"]) > 0
    name = ck.metadata["arch"] if key == "resnet" else ck.metadata["config"]["MODEL"]["NAME"]
    assert name == entry["variant"]
    assert (DEMO / entry["file"]).stat().st_size == entry["bytes"]
    assert ck.spec.img_size == entry["input_size"] and ck.spec.num_classes == 10
