"""Accuracy evaluation on class-per-folder images, for every backend; the shipped demo checkpoints."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acmix_deploy import AcmixDeployError, Predictor
from acmix_deploy.evaluate import EvalReport, EvaluationError, evaluate, format_report, index_image_folder
from acmix_deploy.labels import imagenet1k, imagenet1k_wnids

CLASSES = [f"c{i:02d}" for i in range(10)]


def write_folder(root: Path, classes, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            h, w = rng.integers(48, 90, size=2)
            arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"img{j}.{'png' if j % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10 classes x 3 random images, plus things the index must skip or find."""
    root = write_folder(tmp_path_factory.mktemp("evalset") / "val", CLASSES, 3)
    (root / "c03" / "notes.txt").write_text("not an image")
    (root / "c03" / ".hidden.png").write_bytes(b"")
    (root / ".ipynb_checkpoints").mkdir()
    nested = root / "c07" / "more"
    nested.mkdir()
    Image.fromarray(np.full((70, 70, 3), 200, np.uint8)).save(nested / "x.PNG")
    return root


def manual_hits(predictor: Predictor, index, ks=(1, 5)) -> dict[int, int]:
    paths = [p for p, _ in index.samples]
    preds = predictor.predict(paths, top_k=max(ks))
    return {
        k: sum(label in [p.index for p in top[:k]] for top, (_, label) in zip(preds, index.samples, strict=True))
        for k in ks
    }


def test_index_follows_imagefolder_order(folder):
    index = index_image_folder(folder)
    assert index.classes == CLASSES
    assert len(index.samples) == 31  # 30 + the nested one; txt, hidden file and hidden folder skipped
    assert [label for _, label in index.samples] == sorted(label for _, label in index.samples)
    assert (folder / "c07" / "more" / "x.PNG", 7) in index.samples


def test_onnx_torch_and_manual_loop_agree(small_artifacts, folder):
    calls = []
    onnx_report = evaluate(small_artifacts["onnx"], folder, batch_size=7, progress=lambda d, t: calls.append((d, t)))
    torch_report = evaluate(small_artifacts["checkpoint"], folder, img_size=64)
    assert (onnx_report.backend, torch_report.backend) == ("onnxruntime", "torch")
    assert onnx_report.num_images == torch_report.num_images == 31
    assert onnx_report.top_k == (1, 5)
    assert onnx_report.correct == torch_report.correct
    assert onnx_report.per_class_correct == torch_report.per_class_correct
    assert onnx_report.predictions == torch_report.predictions
    assert onnx_report.per_class_total == [3] * 7 + [4] + [3] * 2
    assert calls[0] == (0, 31) and calls[-1] == (31, 31) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == 1 + 5  # ceil(31 / 7) batches

    predictor = Predictor.load(small_artifacts["onnx"])
    assert manual_hits(predictor, index_image_folder(folder)) == onnx_report.correct
    # An open Predictor is accepted and left open.
    assert evaluate(predictor, folder).correct == onnx_report.correct
    assert predictor.predict(str(folder / "c00" / "img0.jpg"))
    for k in (1, 5):
        assert sum(onnx_report.per_class_correct[k]) == onnx_report.correct[k]
        assert onnx_report.accuracy[k] == onnx_report.correct[k] / 31
    data = onnx_report.to_dict()
    json.dumps(data)
    assert data["accuracy_percent"]["top1"] == pytest.approx(100 * onnx_report.top1, abs=1e-3)


def test_class_names_override_and_dropped_k(small_artifacts, folder, tmp_path):
    base = evaluate(small_artifacts["onnx"], folder, top_k=(1, 3, 20))
    assert base.top_k == (1, 3) and any("top-20" in note for note in base.notes)
    reordered = list(reversed(CLASSES))
    (tmp_path / "labels.txt").write_text("\n".join(reordered) + "\n")
    by_list = evaluate(small_artifacts["onnx"], folder, top_k=(1,), class_names=reordered)
    by_file = evaluate(small_artifacts["onnx"], folder, top_k=(1,), class_names=tmp_path / "labels.txt")
    assert by_list.classes == reordered and by_list.correct == by_file.correct
    assert by_list.per_class_total == [3, 3, 4] + [3] * 7
    # The same model and images; only the class order (hence the truth and the sample order) changed.
    before = dict(zip(base.paths, zip(base.predictions, base.labels, strict=True), strict=True))
    after = dict(zip(by_list.paths, zip(by_list.predictions, by_list.labels, strict=True), strict=True))
    assert before.keys() == after.keys()
    assert all(after[p] == (pred, 9 - label) for p, (pred, label) in before.items())


def test_subset_of_classes_with_class_names(small_artifacts, tmp_path):
    root = write_folder(tmp_path / "subset", CLASSES[:2], 2)
    with pytest.raises(EvaluationError, match="2 class folders but the model has 10 classes; pass class_names"):
        evaluate(small_artifacts["onnx"], root)
    report = evaluate(small_artifacts["onnx"], root, class_names=CLASSES)
    assert report.num_images == 4 and report.per_class_total == [2, 2] + [0] * 8
    assert any("8 class(es) without images" in note for note in report.notes)
    assert "c09" not in format_report(report)  # classes without images are not listed


def test_errors(small_artifacts, tmp_path, folder):
    onnx = small_artifacts["onnx"]
    with pytest.raises(EvaluationError, match="no such directory"):
        evaluate(onnx, tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(EvaluationError, match="not a directory"):
        evaluate(onnx, tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="no class folders"):
        evaluate(onnx, tmp_path / "empty")
    for name in CLASSES:
        (tmp_path / "noimages" / name).mkdir(parents=True)
    (tmp_path / "noimages" / "c00" / "readme.txt").write_text("x")
    with pytest.raises(EvaluationError, match="no images"):
        evaluate(onnx, tmp_path / "noimages")
    big = write_folder(tmp_path / "eleven", [f"k{i}" for i in range(11)], 1)
    with pytest.raises(EvaluationError, match=r"11 class folders but the model has 10 classes$"):
        evaluate(onnx, big)
    with pytest.raises(EvaluationError, match="not in class_names: c09"):
        evaluate(onnx, folder, class_names=[*CLASSES[:9], "other"])
    with pytest.raises(EvaluationError, match="duplicate"):
        evaluate(onnx, folder, class_names=[*CLASSES[:9], "c00"])
    with pytest.raises(EvaluationError, match="top_k"):
        evaluate(onnx, folder, top_k=(0,))
    with pytest.raises(EvaluationError, match="batch_size"):
        evaluate(onnx, folder, batch_size=0)
    broken = write_folder(tmp_path / "broken", CLASSES, 1)
    (broken / "c05" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AcmixDeployError, match=r"bad\.png: not a readable image"):
        evaluate(onnx, broken)
    # What the CLI prints for these: one line naming the folder, exit 1 (not a traceback).
    from tests.test_cli import run_cli

    proc = run_cli("evaluate", str(onnx), "--data", str(tmp_path / "noimages"))
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "noimages: no images" in proc.stderr


def test_format_report_many_classes():
    n = 30
    report = EvalReport(
        artifact="m.onnx",
        backend="onnxruntime",
        data_dir="val",
        classes=[f"n{i:03d}" for i in range(n)],
        num_images=60,
        top_k=(1, 5),
        correct={1: 45, 5: 58},
        per_class_total=[2] * n,
        per_class_correct={1: [2] * 15 + [1] * 15, 5: [2] * 28 + [1] * 2},
        seconds=2.0,
    )
    text = format_report(report)
    assert "top-1        75.00%  (45/60)" in text and "top-5        96.67%  (58/60)" in text
    assert "30.0 images/s" in text and "worst classes (top-1):" in text
    assert "n015" in text and "n000" not in text and len(text.splitlines()) == 5 + 1 + 5
    assert report.per_class_accuracy(1)[0] == 1.0


# -- the shipped demo checkpoints, trained on scikit-learn's digits by scripts/train_demo.py -----------------


def demo_dir() -> Path:
    return Path(str(resources.files("acmix_deploy").joinpath("data/demo")))


@pytest.fixture(scope="module")
def digits_test_folder(tmp_path_factory):
    pytest.importorskip("sklearn", reason="the digits dataset ships in scikit-learn (pip install scikit-learn)")
    from acmix_deploy.datasets import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("digits") / "test", split="test")


def test_digits_folder_layout(digits_test_folder):
    from acmix_deploy.datasets import digits_dataset

    index = index_image_folder(digits_test_folder)
    assert index.classes == [str(i) for i in range(10)]
    images, labels, _ = digits_dataset("test")
    assert len(index.samples) == len(labels) == 359  # round(20%) of each class's 174..183 images
    assert np.bincount(labels).tolist() == np.bincount([label for _, label in index.samples]).tolist()
    path, label = index.samples[0]
    assert np.array_equal(np.asarray(Image.open(path)), images[labels == label][0])  # PNG is lossless
    train = digits_dataset("train")[2]
    assert not set(train) & set(digits_dataset("test")[2]) and len(train) == 1797 - 359


def test_shipped_checkpoints_reach_their_recorded_accuracy(digits_test_folder, tmp_path):
    from acmix_deploy.exporters.onnx import export_onnx

    readme = json.loads((demo_dir() / "README.json").read_text())
    resnet = readme["models"]["resnet"]
    ckpt = demo_dir() / resnet["file"]
    torch_report = evaluate(ckpt, digits_test_folder, img_size=64)
    assert abs(100 * torch_report.top1 - resnet["held_out_top1_percent"]) <= 0.5
    assert torch_report.top1 >= 0.95

    onnx_path = tmp_path / "digits.onnx"
    export_onnx(ckpt, onnx_path, img_size=64, validate_batches=[2])
    onnx_report = evaluate(onnx_path, digits_test_folder)
    assert abs(100 * onnx_report.top1 - resnet["held_out_top1_percent"]) <= 0.5
    disagree = sum(a != b for a, b in zip(onnx_report.predictions, torch_report.predictions, strict=True))
    assert disagree <= 1, f"ONNX and torch disagree on {disagree} of {onnx_report.num_images} images"

    swin = readme["models"]["swin"]
    swin_report = evaluate(demo_dir() / swin["file"], digits_test_folder)
    assert abs(100 * swin_report.top1 - swin["held_out_top1_percent"]) <= 0.5
    assert swin_report.top1 >= 0.95


def test_recorded_labels_name_predictions_and_match_folders(digits_test_folder, tmp_path):
    """Labels given at export reach the Predictor, and a folder with only some classes is matched by name."""
    import shutil

    from acmix_deploy.exporters.onnx import export_onnx
    from acmix_deploy.labels import read_labels

    labels = read_labels(demo_dir() / "digits_labels.txt")
    onnx_path = tmp_path / "named.onnx"
    export_onnx(demo_dir() / "digits_acmix_resnet26.pth", onnx_path, img_size=64, validate_batches=[1], labels=labels)
    subset = tmp_path / "only-3-and-7"
    for name in ("3", "7"):
        shutil.copytree(digits_test_folder / name, subset / name)

    report = evaluate(onnx_path, subset)
    assert report.classes == labels and report.per_class_total[3] > 0 and report.per_class_total[7] > 0
    assert report.top1 >= 0.9, "folders matched by name keep their true class"
    assert any("matched" in note for note in report.notes)
    # Without recorded names, two folders cannot be placed among ten classes: refused, not guessed.
    from acmix_deploy.checkpoint import load_checkpoint, save_checkpoint

    unnamed = save_checkpoint(
        load_checkpoint(demo_dir() / "digits_acmix_resnet26.pth"), tmp_path / "unnamed.pth", name="acmix_resnet26",
        img_size=64,
    )  # fmt: skip
    with pytest.raises(EvaluationError, match="class_names"):
        evaluate(unnamed, subset, img_size=64)
    # The shipped checkpoint records its names: evaluated directly, its folders match by name too.
    assert evaluate(demo_dir() / "digits_acmix_resnet26.pth", subset).classes == labels

    with Predictor.load(onnx_path) as predictor:
        best = predictor.predict([next((subset / "7").iterdir())], top_k=1)[0][0]
    assert predictor.labels == labels and best.label == "7"

    with pytest.raises(AcmixDeployError, match="labels"):
        export_onnx(demo_dir() / "digits_acmix_resnet26.pth", tmp_path / "bad.onnx", img_size=64, labels=["a", "b"])


def test_cli_exports_several_precisions_and_compares_them_in_one_table(digits_test_folder, tmp_path):
    from tests.test_cli import run_cli

    ckpt = demo_dir() / "digits_acmix_resnet26.pth"
    proc = run_cli(
        "export", str(ckpt), "-o", str(tmp_path), "--name", "d", "--precision", "fp16,int8",
        "--int8-target", "cpu-dynamic", "--skip-latency",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    artifacts = [tmp_path / "d.onnx", tmp_path / "d.fp16.onnx", tmp_path / "d.int8.onnx"]
    assert all(path.is_file() for path in artifacts)
    proc = run_cli(
        "evaluate", *map(str, artifacts), "--data", str(digits_test_folder), "--json", str(tmp_path / "e.json")
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.startswith("d.")}
    assert set(rows) == {"d.onnx", "d.fp16.onnx", "d.int8.onnx"}
    assert rows["d.fp16.onnx"][1] == "mixed" and rows["d.int8.onnx"][1] == "int8"
    assert rows["d.onnx"][-2] == "100.00%"  # the reference agrees with itself
    assert float(rows["d.fp16.onnx"][-2].rstrip("%")) >= 99.0
    reports = json.loads((tmp_path / "e.json").read_text())
    assert [r["artifact"] for r in reports] == [str(p) for p in artifacts]


def test_comparison_refuses_reports_over_different_images(small_artifacts, folder, tmp_path):
    from acmix_deploy.evaluate import format_comparison

    a = evaluate(small_artifacts["onnx"], folder)
    b = evaluate(small_artifacts["onnx"], write_folder(tmp_path / "other", CLASSES, 1, seed=3))
    assert "agree" in format_comparison([a, a])
    with pytest.raises(EvaluationError, match="other images"):
        format_comparison([a, b])


# -- ImageNet layouts: a tiny 1000-class model, folders by WordNet id, by name, or through a class map ----------


@pytest.fixture(scope="module")
def imagenet_model(tmp_path_factory):
    """A narrow 1000-class ACmix-ResNet checkpoint (64 px) and 12 images with the class it gives each."""
    from acmix_deploy.checkpoint import save_checkpoint
    from acmix_deploy.models import build_model
    from tests.conftest import randomize

    root = tmp_path_factory.mktemp("in1k")
    model = randomize(build_model("acmix_resnet26", width=16, num_classes=1000), seed=3)
    ckpt = save_checkpoint(model, root / "in1k.pth", name="acmix_resnet26", img_size=64)
    rng = np.random.default_rng(5)
    images = []
    for i in range(12):
        images.append(root / f"x{i}.png")
        Image.fromarray((rng.random((72, 72, 3)) * 255).astype(np.uint8)).save(images[-1])
    with Predictor.load(ckpt) as predictor:
        top1 = [preds[0].index for preds in predictor.predict(images, top_k=1)]
    return ckpt, images, top1


def imagenet_tree(root: Path, images, top1, name=lambda index: imagenet1k_wnids()[index]) -> dict[Path, int]:
    """Each image in the folder of the class the model gives it; two more in tench's (class 0), all wrong."""
    wrong = [img for img, c in zip(images, top1, strict=True) if c != 0][:2]
    truth = {}
    for img, c in [*zip(images, top1, strict=True), *((img, 0) for img in wrong)]:
        folder = root / name(c)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{img.stem}_{len(truth)}.png"
        target.write_bytes(img.read_bytes())
        truth[target] = c
    return truth


def test_imagenet_layout_subset_by_wnid_and_by_name(imagenet_model, tmp_path):
    ckpt, images, top1 = imagenet_model
    truth = imagenet_tree(tmp_path / "val", images, top1)
    report = evaluate(ckpt, tmp_path / "val", top_k=(1,))
    assert report.num_images == 14 and len(report.classes) == 1000
    assert {Path(p): label for p, label in zip(report.paths, report.labels, strict=True)} == truth
    assert report.correct[1] == 12  # each image is in its own top-1 class's folder, but tench's two
    assert report.per_class_total[0] == 2 and report.per_class_correct[1][0] == 0
    assert report.listed == sorted({*top1, 0}) and any("by WordNet id" in note for note in report.notes)
    assert not any("without images" in note for note in report.notes)  # 1000 - k absent classes are not "empty"
    text = format_report(report)
    assert "of the model's 1000 classes" in text and "n01440764 tench" in text
    assert f"{imagenet1k_wnids()[top1[0]]} {imagenet1k()[top1[0]]}" in text
    data = report.to_dict()
    assert [c["index"] for c in data["per_class"]] == report.listed
    assert data["per_class"][0] == {
        "class": "tench", "index": 0, "images": 2, "folder": "n01440764", "wnid": "n01440764", "top1_correct": 0
    }  # fmt: skip

    # The same images in folders named by class name (tench's with '_', upper case) give the same labels.
    def by_name(c: int) -> str:
        return "TENCH" if c == 0 else imagenet1k()[c].replace(" ", "_")

    named = imagenet_tree(tmp_path / "named", images, top1, by_name)
    again = evaluate(ckpt, tmp_path / "named", top_k=(1,))
    assert sorted(again.labels) == sorted(named.values()) == sorted(truth.values()) and again.correct[1] == 12
    assert "n01440764" not in format_report(again) and "tench" in format_report(again)

    # export --eval-data places the folders the same way (the precision checks' accuracy).
    from acmix_deploy.exporters.precision.common import folder_accuracy

    with Predictor.load(ckpt) as predictor:
        accuracy = folder_accuracy(predictor.infer, predictor.infer, tmp_path / "val", predictor.manifest)
    assert accuracy["images"] == 14 and accuracy["top1_percent"] == round(100 * 12 / 14, 4)


def test_class_map_and_refusals_from_the_cli(imagenet_model, tmp_path):
    from tests.test_cli import run_cli

    ckpt, images, top1 = imagenet_model
    names = {top1[0]: "mine", 0: "other"}
    truth = imagenet_tree(tmp_path / "val", images[:1], top1[:1], lambda c: names[c])
    assert sorted(truth.values()) == [0, top1[0]] and (tmp_path / "val" / "other").is_dir()
    (tmp_path / "map.txt").write_text(f"mine {top1[0]}\nother 0\n")
    (tmp_path / "map.json").write_text(json.dumps({"mine": top1[0], "other": 0}))
    by_json = evaluate(ckpt, tmp_path / "val", class_map=tmp_path / "map.json")
    assert by_json.correct[1] == 1 and by_json.listed == sorted(names) and by_json.num_images == 2

    proc = run_cli("evaluate", str(ckpt), "--data", str(tmp_path / "val"), "--class-map", str(tmp_path / "map.txt"))
    assert proc.returncode == 0, proc.stderr
    assert "top-1        50.00%  (1/2)" in proc.stdout and "2 of the model's 1000 classes" in proc.stdout
    assert f"{imagenet1k()[top1[0]]} (mine)  100.00%  (1/1)" in proc.stdout and "tench (other)" in proc.stdout

    # Without the map, these folders are no ImageNet class: refused in one line naming them.
    proc = run_cli("evaluate", str(ckpt), "--data", str(tmp_path / "val"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "2 of 2 folder(s) match no class in ImageNet-1k" in proc.stderr and "mine, other" in proc.stderr
    assert "--class-map" in proc.stderr
    (tmp_path / "val" / "zzz").mkdir()
    with pytest.raises(EvaluationError, match=r"1 of 3 folder\(s\) match no class in the class map: zzz$"):
        evaluate(ckpt, tmp_path / "val", class_map=tmp_path / "map.json")
    proc = run_cli("evaluate", str(ckpt), "--data", str(tmp_path), "--labels", "a", "--class-map", "b")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr and proc.stderr.count("\n") == 1
