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
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..errors import AcmixDeployError
from ..families import family_of
from ..fileio import atomic_output
from ..labels import label_problem
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


def official_payload(
    model: nn.Module,
    name: str,
    *,
    epoch: int = 0,
    img_size: int | None = None,
    accuracy: float | None = None,
    labels: list[str] | None = None,
) -> dict:
    """The dict the official training script would save for this model.

    ``epoch`` (written as given) and ``accuracy`` (top-1, percent) go where each script keeps
    them: ``epoch`` and ``best_acc1`` (a tensor, as ``ResNet/main.py`` saves it) for ACmix-ResNet,
    ``epoch`` and ``max_accuracy`` for Swin. ``img_size`` (ACmix-ResNet only) adds an ``img_size`` entry: no
    tensor of an ACmix-ResNet records its training resolution, and the official loader reads only
    ``state_dict``, so the extra key costs nothing there and spares our users ``--img-size``.
    Swin's resolution is in its config (and its buffers). ``labels`` adds a ``labels`` entry (the
    class names in output order), which the official loaders ignore as they ignore ``img_size``.
    """
    sd = model.state_dict()
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": list(range(len(sd)))}]}
    best = float(accuracy) if accuracy is not None else 0.0
    if _resnet_layout(model):
        payload = {
            "epoch": epoch,
            "arch": name,
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "best_acc1": torch.tensor(best),
            "optimizer": optimizer,
        }
        if img_size is not None:
            payload["img_size"] = int(img_size)
    else:
        payload = {
            "model": sd,
            "optimizer": optimizer,
            "lr_scheduler": {"last_epoch": epoch},
            "max_accuracy": best,
            "epoch": epoch,
            "config": swin_config(model, name),
        }
    if labels is not None:
        payload["labels"] = list(labels)
    return payload


def _resnet_layout(model: nn.Module) -> bool:
    return family_of(model).official_layout == "official-resnet"


def recorded_epoch(model: nn.Module, epochs: int) -> int:
    """The ``epoch`` entry the official script writes after ``epochs`` epochs of training.

    ``ResNet/main.py`` saves the epoch to resume from (``epoch + 1``: the count trained); Swin's
    ``utils.save_checkpoint`` the index of the epoch just finished (resuming starts at ``epoch + 1``).
    """
    return epochs if _resnet_layout(model) else max(epochs - 1, 0)


def _check_records(model: nn.Module, layout: str, img_size, epochs, accuracy, labels) -> None:
    """Refuse values a reader could not trust, and records the layout has nowhere to keep."""
    if layout not in LAYOUTS:
        raise AcmixDeployError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if img_size is not None and (type(img_size) is not int or img_size <= 0):
        raise AcmixDeployError(f"img_size must be a positive integer, got {img_size!r}")
    if type(epochs) is not int or epochs < 0:
        raise AcmixDeployError(f"epochs must be a non-negative integer, got {epochs!r}")
    if accuracy is not None and (
        isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0.0 <= accuracy <= 100.0
    ):
        raise AcmixDeployError(f"accuracy must be a top-1 percentage in [0, 100], got {accuracy!r}")
    if labels is not None:
        problem = label_problem(labels, int(model.hparams()["num_classes"]))
        if problem:
            raise AcmixDeployError(f"cannot record the class names: {problem}")
        if layout == "state-dict":
            raise AcmixDeployError(
                "a bare state dict has nowhere to keep class names; use the official or safetensors layout"
            )


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    layout: str = "official",
    name: str = "",
    force: bool = False,
    img_size: int | None = None,
    epochs: int = 0,
    accuracy: float | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Write ``model``'s weights to ``path`` atomically in one of :data:`LAYOUTS`.

    Args:
        model: an ACmix model (its family decides the official layout).
        path: the destination; an existing file is replaced only with ``force``.
        layout: ``official`` (the training script's dict), ``state-dict`` or ``safetensors``.
        name: the variant name, recorded as ``arch`` (ResNet) or in the config (Swin).
        force: replace an existing file.
        img_size: the training resolution of an ACmix-ResNet, recorded in the official layout
            (an ``img_size`` entry) and in safetensors metadata, so loading needs no ``--img-size``.
            A bare state dict has nowhere to keep it.
        epochs: epochs trained, recorded in the official layouts' ``epoch`` entry with each
            script's meaning (:func:`recorded_epoch`).
        accuracy: the held-out top-1 in percent, recorded in the official layouts
            (``best_acc1`` / ``max_accuracy``); 0.0 when not given, as an untrained run records.
        labels: class names in output order (one per class, usable as folder names), recorded as
            a ``labels`` entry (official layouts) or as JSON in the safetensors metadata; read back
            as ``Checkpoint.labels``. Refused for a bare state dict, which has nowhere to keep them.

    Raises:
        AcmixDeployError: an unknown layout, a bad value, or a record the layout cannot hold.
        OutputExistsError: ``path`` exists and ``force`` is not given.
    """
    _check_records(model, layout, img_size, epochs, accuracy, labels)
    with atomic_output(path, force=force) as tmp:
        if layout == "safetensors":
            meta = {"format": "pt", "arch": name} | ({"img_size": str(img_size)} if img_size else {})
            if labels is not None:
                meta["labels"] = json.dumps(list(labels))
            tmp.write_bytes(safetensors_bytes(model.state_dict(), meta))
        elif layout == "state-dict":
            torch.save(model.state_dict(), tmp)
        else:
            epoch = recorded_epoch(model, epochs)
            payload = official_payload(model, name, epoch=epoch, img_size=img_size, accuracy=accuracy, labels=labels)
            with yacs_importable():
                torch.save(payload, tmp)
    return Path(path)
