"""Train the small demo ACmix models on scikit-learn's handwritten digits; ship them as official checkpoints.

    .venv/bin/python scripts/train_demo.py                 # both models (a few minutes each, 2 CPU threads)
    .venv/bin/python scripts/train_demo.py --model resnet  # one of them; README.json keeps the other's entry
    .venv/bin/python scripts/train_demo.py --records-only  # rewrite the shipped files' records, weights untouched

The digits (1,797 8x8 images bundled in the scikit-learn wheel, nothing downloaded) are upscaled to
64x64 RGB and split 80/20, stratified, seeded (``acmix_deploy.datasets``). Training inputs are made by
``acmix_deploy.preprocess.preprocess`` with the preprocessing the artifact's manifest will carry
(resize to int(64 / 0.875) = 73 px, centre crop 64, ImageNet mean/std; bilinear for ACmix-ResNet,
bicubic for Swin), from the same uint8 images that ``write_digits_folder`` saves as PNG, so training
and evaluation see bit-identical inputs. The held-out accuracy recorded in README.json is measured on
the saved checkpoint through ``acmix_deploy.evaluate`` (PNG folder -> Predictor), not on the training
tensors.

Output (``--out``, default ``acmix_deploy/data/demo/``): ``digits_acmix_resnet26.pth`` and
``digits_acmix_swin.pth`` in the official training scripts' layouts, ``digits_labels.txt`` and
``README.json``. Each checkpoint records what it is, as a trained official one would: the epochs
trained, its held-out top-1 (``best_acc1`` / ``max_accuracy``), and the class names ``0`` .. ``9``
(so a Predictor on the checkpoint names digits as the exported ONNX does). ``--records-only``
rewrites those records in existing files from README.json, reading the weights safely and
checking they come out unchanged.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acmix_deploy.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from acmix_deploy.datasets import (  # noqa: E402
    DIGITS_CLASSES,
    DIGITS_SEED,
    DIGITS_SIZE,
    DIGITS_TEST_FRACTION,
    digits_split,
    load_digits_images,
    write_digits_folder,
)
from acmix_deploy.evaluate import evaluate  # noqa: E402
from acmix_deploy.families import family_of  # noqa: E402
from acmix_deploy.fileio import atomic_write_text  # noqa: E402
from acmix_deploy.models import build_model  # noqa: E402
from acmix_deploy.models.acmix_resnet import ACmix  # noqa: E402
from acmix_deploy.preprocess import preprocess  # noqa: E402

DEFAULT_OUT = ROOT / "acmix_deploy" / "data" / "demo"

# name -> (registry variant, constructor overrides, file name, default hyperparameters)
MODELS = {
    "resnet": (
        "acmix_resnet26",
        {"width": 16, "num_classes": 10},
        "digits_acmix_resnet26.pth",
        {"epochs": 5, "lr": 2e-3, "weight_decay": 0.05, "batch_size": 16},
    ),
    "swin": (
        "acmix_swin_tiny",
        {
            "embed_dim": 24,
            "depths": (2, 2, 2, 2),
            "num_heads": (1, 2, 2, 4),
            "num_classes": 10,
            "img_size": DIGITS_SIZE,
            "window_size": 4,
        },
        "digits_acmix_swin.pth",
        {"epochs": 6, "lr": 2e-3, "weight_decay": 0.05, "batch_size": 16},
    ),
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fast_windows(self: ACmix, t: torch.Tensor) -> torch.Tensor:
    """``ACmix._windows`` with Tensor.unfold views instead of ``F.unfold`` (im2col, slow on CPU).

    The same values in the same order (checked bit-exactly before use): a training-time speed-up only;
    the trained weights are those of the unmodified model.
    """
    n, c = t.shape[:2]
    k, s = self.kernel_att, self.stride
    padded = F.pad(t, (self.padding_att,) * 4, mode="reflect")
    win = padded.unfold(2, k, s).unfold(3, k, s)  # (n, c, h_out, w_out, k, k)
    h_out, w_out = win.shape[2:4]
    return win.permute(0, 1, 4, 5, 2, 3).reshape(n, c, k * k, h_out, w_out)


def speed_up(model: torch.nn.Module) -> None:
    probe = torch.randn(2, 3, 11, 11, generator=torch.Generator().manual_seed(0))
    for module in model.modules():
        if isinstance(module, ACmix):
            if not torch.equal(module._windows(probe), fast_windows(module, probe)):
                raise RuntimeError("fast_windows differs from ACmix._windows")
            module._windows = types.MethodType(fast_windows, module)


def shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``max_shift`` px per image (edge replication)."""
    if max_shift <= 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=g).tolist()
    return torch.stack([padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)])


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 128) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


def save_demo_checkpoint(
    model: torch.nn.Module, path: Path, variant: str, *, epochs: int, accuracy: float | None
) -> Path:
    """The shipped file: official layout, with epochs trained, held-out top-1 (percent) and class names."""
    size = None if family_of(model).fixed_input_size else DIGITS_SIZE  # Swin records it in its config
    return save_checkpoint(
        model,
        path,
        layout="official",
        name=variant,
        force=True,
        img_size=size,
        epochs=epochs,
        accuracy=accuracy,
        labels=list(DIGITS_CLASSES),
    )


def train_one(key: str, args, images: np.ndarray, labels: np.ndarray, out: Path) -> dict:
    variant, overrides, filename, defaults = MODELS[key]
    hp = {name: getattr(args, name) if getattr(args, name) is not None else value for name, value in defaults.items()}
    seed_everything(args.seed)
    model = build_model(variant, **overrides)
    family = family_of(model)
    pre = family.preprocessing(DIGITS_SIZE)
    # Exactly the evaluation pipeline: uint8 RGB image -> resize 73 -> centre crop 64 -> ImageNet normalise.
    x_all = torch.from_numpy(preprocess([Image.fromarray(img, mode="RGB") for img in images], pre))
    y_all = torch.from_numpy(labels)
    train_idx, test_idx = digits_split(labels, seed=DIGITS_SEED, test_fraction=DIGITS_TEST_FRACTION)
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_test, y_test = x_all[test_idx], y_all[test_idx]

    if not family.fixed_input_size:  # ACmix-ResNet: its attention windows are built with F.unfold
        speed_up(model)
    params_decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "relative_position" not in n]
    params_rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "relative_position" not in n)]
    opt = torch.optim.AdamW(
        [{"params": params_decay, "weight_decay": hp["weight_decay"]}, {"params": params_rest, "weight_decay": 0.0}],
        lr=hp["lr"],
    )
    steps_per_epoch = (len(x_train) + hp["batch_size"] - 1) // hp["batch_size"]
    total = hp["epochs"] * steps_per_epoch
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + np.cos(np.pi * (s - warmup) / (total - warmup)))
    )
    g = torch.Generator().manual_seed(args.seed)
    print(f"[{key}] {variant} {overrides} {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {hp}")
    t0 = time.perf_counter()
    for epoch in range(hp["epochs"]):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * hp["batch_size"] : (step + 1) * hp["batch_size"]]
            xb = shift(x_train[idx], args.shift, g)
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
        acc = accuracy(model, x_test, y_test) if args.eval_each_epoch or epoch == hp["epochs"] - 1 else float("nan")
        print(
            f"[{key}] epoch {epoch + 1}/{hp['epochs']}  loss {running / steps_per_epoch:.4f}  "
            f"held-out top-1 {100 * acc:.2f}%  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    train_seconds = time.perf_counter() - t0

    model.eval()
    ckpt = save_demo_checkpoint(model, out / filename, variant, epochs=hp["epochs"], accuracy=None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_digits_folder(Path(tmp) / "digits-test", split="test")
        opts: dict = {}  # the checkpoint records its input size and class names
        report = evaluate(ckpt, folder, top_k=(1, 5), **opts)
    # The accuracy is measured on the saved file; record it there (same weights, written again).
    ckpt = save_demo_checkpoint(model, ckpt, variant, epochs=hp["epochs"], accuracy=round(100 * report.top1, 2))
    print(f"[{key}] {ckpt} ({ckpt.stat().st_size / 1e6:.2f} MB): artifact held-out top-1 {100 * report.top1:.2f}%")
    return {
        "file": filename,
        "variant": variant,
        "constructor": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "input_size": DIGITS_SIZE,
        "evaluate_options": opts,
        "params": sum(p.numel() for p in model.parameters()),
        "bytes": ckpt.stat().st_size,
        "hyperparameters": {
            **hp,
            "optimizer": "AdamW",
            "schedule": "linear warm-up 10% + cosine",
            "label_smoothing": 0.1,
            "augmentation": f"random shift <= {args.shift} px",
        },
        "train_seconds": round(train_seconds, 1),
        "train_images": len(x_train),
        "held_out_images": report.num_images,
        "held_out_top1_percent": round(100 * report.top1, 2),
        "held_out_top5_percent": round(100 * report.accuracy[5], 2),
        "held_out_correct_top1": report.correct[1],
        "training_tensor_top1_percent": round(100 * accuracy(model, x_test, y_test), 2),
    }


def rewrite_records(entry: dict, out: Path) -> dict:
    """Write a shipped checkpoint again with its records from README.json; the weights must come out unchanged."""
    path = out / entry["file"]
    before = read_checkpoint(path)  # restricted unpickling: tensors and plain data only
    model = before.to_model()
    save_demo_checkpoint(
        model,
        path,
        entry["variant"],
        epochs=entry["hyperparameters"]["epochs"],
        accuracy=entry["held_out_top1_percent"],
    )
    after = read_checkpoint(path)
    same = before.state_dict.keys() == after.state_dict.keys() and all(
        torch.equal(before.state_dict[k], after.state_dict[k]) for k in before.state_dict
    )
    if not same or after.labels != list(DIGITS_CLASSES):
        raise RuntimeError(f"{path}: rewriting the records changed the weights or lost the class names")
    print(f"{path}: records { ({k: after.metadata.get(k) for k in ('epoch', 'best_acc1', 'max_accuracy')}) }")
    return {**entry, "bytes": path.stat().st_size}


def training_command(key: str, args) -> str:
    """The command reproducing this model's weights (options that do not change them left out)."""
    parts = ["python scripts/train_demo.py", f"--model {key}"]
    for name, flag, default in [
        ("seed", "--seed", 0),
        ("threads", "--threads", 1),
        ("epochs", "--epochs", None),
        ("lr", "--lr", None),
        ("weight_decay", "--weight-decay", None),
        ("batch_size", "--batch-size", None),
        ("shift", "--shift", 2),
    ]:
        value = getattr(args, name)
        if value != default:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", choices=["resnet", "swin", "both"], default="both")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (at most 2; 1 is fastest on a busy machine)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: per model (see MODELS)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--weight-decay", dest="weight_decay", type=float, default=None)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    parser.add_argument("--shift", type=int, default=2, help="max random translation in px (0: none)")
    parser.add_argument("--eval-each-epoch", action="store_true")
    parser.add_argument(
        "--records-only", action="store_true", help="rewrite the records of existing files from README.json"
    )
    args = parser.parse_args(argv)
    readme_path = args.out / "README.json"
    if args.records_only:
        readme = json.loads(readme_path.read_text())
        keys = ["resnet", "swin"] if args.model == "both" else [args.model]
        readme["models"] |= {key: rewrite_records(readme["models"][key], args.out) for key in keys}
        atomic_write_text(readme_path, json.dumps(readme, indent=2) + "\n", force=True)
        return 0

    torch.set_num_threads(max(1, min(2, args.threads)))
    args.out.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits_images(DIGITS_SIZE)
    atomic_write_text(args.out / "digits_labels.txt", "\n".join(DIGITS_CLASSES) + "\n", force=True)
    readme = json.loads(readme_path.read_text()) if readme_path.is_file() else {}
    models = readme.get("models", {})
    for key in ["resnet", "swin"] if args.model == "both" else [args.model]:
        models[key] = train_one(key, args, images, labels, args.out)
        models[key]["command"] = training_command(key, args)
        models[key]["torch"] = torch.__version__
        models[key]["threads"] = torch.get_num_threads()

    import sklearn

    readme = {
        "description": "Small ACmix models trained on scikit-learn's handwritten digits (8x8 -> 64x64 RGB), "
        "official checkpoint layouts; evaluate with acmix_deploy.evaluate on "
        "acmix_deploy.datasets.write_digits_folder(dest, split='test').",
        "script": "scripts/train_demo.py",
        "dataset": {
            "source": "sklearn.datasets.load_digits (bundled in the scikit-learn wheel)",
            "images": len(labels),
            "classes": 10,
            "render": "values 0..16 scaled to 0..255, PIL bilinear upscale to 64x64, RGB",
            "split": f"stratified, seed {DIGITS_SEED}, {DIGITS_TEST_FRACTION:.0%} held out "
            "(acmix_deploy.datasets.digits_split)",
            "preprocessing": "the manifest's: resize 73, centre crop 64, ImageNet mean/std",
        },
        "seed": args.seed,
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "python": platform.python_version(),
        },
        "models": models,
    }
    readme_path.write_text(json.dumps(readme, indent=2) + "\n")
    print(f"wrote {readme_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
