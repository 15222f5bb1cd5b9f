"""Write checkpoints in the official training scripts' file layouts.

``acmix-deploy init`` uses this so anyone can try the pipeline without trained weights, and
the tests use it to produce files shaped exactly like those of the official code:

- ACmix-ResNet (``ResNet/main.py``): ``{'epoch', 'arch', 'state_dict' (keys prefixed
  ``module.`` by DataParallel), 'best_acc1', 'optimizer'}``;
- Swin-ACmix (``Swin-Transformer/utils.py``): ``{'model', 'optimizer', 'lr_scheduler',
  'max_accuracy', 'epoch', 'config'}`` where ``config`` is a pickled ``yacs.config.CfgNode``.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import AcmixDeployError
from ..families import family_of
from ..fileio import atomic_output
from .safetensors_io import safetensors_bytes

LAYOUTS = ("official", "state-dict", "safetensors")


class _CfgNode(dict):
    """A dict pickled under the name ``yacs.config.CfgNode``, as the official Swin code's config is."""


@contextlib.contextmanager
def yacs_importable() -> Iterator[type]:
    """Make ``yacs.config.CfgNode`` resolvable to :class:`_CfgNode` while pickling, then undo it.

    Pickle records a class by module and name and checks that the name resolves to the same
    object, so the file it writes references ``yacs.config.CfgNode`` exactly like a real one.
    """
    saved = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
    yacs = types.ModuleType("yacs")
    config = types.ModuleType("yacs.config")
    _CfgNode.__module__, _CfgNode.__qualname__, _CfgNode.__name__ = "yacs.config", "CfgNode", "CfgNode"
    config.CfgNode = _CfgNode
    yacs.config = config
    sys.modules["yacs"], sys.modules["yacs.config"] = yacs, config
    try:
        yield _CfgNode
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def swin_config(model: nn.Module, name: str) -> _CfgNode:
    """The parts of the official Swin yacs config that describe the model."""
    hp = model.hparams()
    swin = _CfgNode(
        PATCH_SIZE=hp["patch_size"],
        IN_CHANS=3,
        EMBED_DIM=hp["embed_dim"],
        DEPTHS=list(hp["depths"]),
        NUM_HEADS=list(hp["num_heads"]),
        WINDOW_SIZE=hp["window_size"],
        MLP_RATIO=hp["mlp_ratio"],
        QKV_BIAS=True,
        QK_SCALE=None,
        APE=hp["ape"],
        PATCH_NORM=hp["patch_norm"],
    )
    model_cfg = _CfgNode(TYPE="swin_acmix", NAME=name, NUM_CLASSES=hp["num_classes"], DROP_RATE=0.0, SWIN=swin)
    cfg = _CfgNode(DATA=_CfgNode(IMG_SIZE=hp["img_size"], INTERPOLATION="bicubic"), MODEL=model_cfg)
    cfg.__dict__["__immutable__"] = True  # as CfgNode.freeze() leaves it
    return cfg


def official_payload(model: nn.Module, name: str, *, epoch: int = 0, img_size: int | None = None) -> dict:
    """The dict the official training script would save for this model.

    ``img_size`` (ACmix-ResNet only) adds an ``img_size`` entry: no tensor of an ACmix-ResNet
    records its training resolution, and the official loader reads only ``state_dict``, so the
    extra key costs nothing there and spares our users ``--img-size``. Swin's resolution is in its
    config (and its buffers).
    """
    sd = model.state_dict()
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": list(range(len(sd)))}]}
    if family_of(model).official_layout == "official-resnet":
        payload = {
            "epoch": epoch,
            "arch": name,
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "best_acc1": torch.tensor(0.0),
            "optimizer": optimizer,
        }
        if img_size is not None:
            payload["img_size"] = int(img_size)
        return payload
    return {
        "model": sd,
        "optimizer": optimizer,
        "lr_scheduler": {"last_epoch": epoch},
        "max_accuracy": 0.0,
        "epoch": epoch,
        "config": swin_config(model, name),
    }


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    layout: str = "official",
    name: str = "",
    force: bool = False,
    img_size: int | None = None,
) -> Path:
    """Write ``model``'s weights to ``path`` atomically in one of :data:`LAYOUTS`.

    ``img_size``: the training resolution of an ACmix-ResNet, recorded in the official layout
    (an ``img_size`` entry) and in safetensors metadata, so loading needs no ``--img-size``.
    A bare state dict has nowhere to keep it.
    """
    if layout not in LAYOUTS:
        raise AcmixDeployError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if img_size is not None and (type(img_size) is not int or img_size <= 0):
        raise AcmixDeployError(f"img_size must be a positive integer, got {img_size!r}")
    with atomic_output(path, force=force) as tmp:
        if layout == "safetensors":
            meta = {"format": "pt", "arch": name} | ({"img_size": str(img_size)} if img_size else {})
            tmp.write_bytes(safetensors_bytes(model.state_dict(), meta))
        elif layout == "state-dict":
            torch.save(model.state_dict(), tmp)
        else:
            with yacs_importable():
                torch.save(official_payload(model, name, img_size=img_size), tmp)
    return Path(path)
