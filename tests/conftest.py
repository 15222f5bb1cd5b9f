"""Shared fixtures: small models with every parameter randomised, so nothing is trivially zero or one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

SMALL_RESNET = {"width": 16, "num_classes": 10}  # 64 px is the smallest input with one layer4 block
SMALL_SWIN = {"embed_dim": 24, "num_heads": (1, 2, 2, 4), "num_classes": 10, "img_size": 64, "window_size": 4}


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and float buffer a random, activation-preserving value (eval mode)."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("rate1", "rate2"):
            p.copy_(rand(p.shape, 0.3, 1.2))
        elif p.dim() >= 2 and "relative_position_bias_table" not in name:
            fan_in = math.prod(p.shape[1:])
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        elif "relative_position_bias_table" in name:
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        elif leaf == "weight":  # norm scales
            p.copy_(rand(p.shape, 0.5, 1.5))
        else:
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
        elif name.endswith("running_var"):
            b.copy_(rand(b.shape, 0.5, 1.5))
    return model.eval()


@pytest.fixture
def make_input():
    def make(batch: int, size: int, seed: int = 1) -> torch.Tensor:
        return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))

    return make


@pytest.fixture(scope="session")
def small_artifacts(tmp_path_factory):
    """A small ACmix-ResNet checkpoint (official layout) and its exported ONNX, 64 px."""
    from acmix_deploy.checkpoint import save_checkpoint
    from acmix_deploy.exporters.onnx import export_onnx
    from acmix_deploy.models import build_model

    root = tmp_path_factory.mktemp("artifacts")
    model = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=41)
    ckpt = save_checkpoint(model, root / "small.pth", layout="official", name="acmix_resnet26")
    onnx_path = root / "small.onnx"
    export_onnx(ckpt, onnx_path, img_size=64, validate_batches=[2], max_batch=8)
    return {"model": model, "checkpoint": ckpt, "onnx": onnx_path, "root": root}


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The shipped trained digits ACmix-ResNet-26 exported once (64 px) with its train/test image folders.

    One export for the whole session: the precision, held-out and sensitivity tests all start from it.
    """
    pytest.importorskip("sklearn", reason="the digits dataset ships in scikit-learn (pip install scikit-learn)")
    from importlib.resources import files

    from acmix_deploy.datasets import write_digits_folder
    from acmix_deploy.exporters.onnx import export_onnx

    root = tmp_path_factory.mktemp("digits")
    ckpt = files("acmix_deploy") / "data" / "demo" / "digits_acmix_resnet26.pth"
    fp32 = root / "r26.onnx"
    export_onnx(str(ckpt), fp32, img_size=64, validate_batches=[2], measure_latency=False)
    return {
        "checkpoint": str(ckpt),
        "onnx": fp32,
        "train": write_digits_folder(root / "train", "train"),
        "test": write_digits_folder(root / "test", "test"),
    }


@pytest.fixture(scope="session")
def cli_env(small_artifacts, tmp_path_factory):
    """The small ONNX, its fp16 variant (made by the library), a 10-class image folder and a labels file."""
    from PIL import Image

    from acmix_deploy.exporters.precision import to_fp16

    root = tmp_path_factory.mktemp("cli_env")
    fp16 = root / "small.fp16.onnx"
    to_fp16(small_artifacts["onnx"], fp16)
    data = root / "digits"
    for c in range(10):
        (data / str(c)).mkdir(parents=True)
        Image.new("RGB", (70, 70), (25 * c, 90, 200 - 15 * c)).save(data / str(c) / "a.png")
    labels = root / "labels.txt"
    labels.write_text("".join(f"{c}\n" for c in range(10)))
    return {
        "onnx": str(small_artifacts["onnx"]),
        "ckpt": str(small_artifacts["checkpoint"]),
        "fp16": fp16,
        "data": str(data),
        "labels": str(labels),
        "root": root,
    }
