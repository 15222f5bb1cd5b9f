"""Checkpoint (or module) -> reference model at the input size it will run at: the one resolution rule.

The exporter, the torch runner and ``init`` all need the same answer: which model the file holds,
and at which size it can run (asked for, else recorded by the checkpoint, else 224; families with
a built-in resolution refuse any other). The family spec owns the rule; this module applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..errors import InputSizeError
from ..families import ModelFamily, family_of, get_family
from .load import Checkpoint, read_checkpoint


@dataclass(frozen=True)
class ResolvedModel:
    """A reference model in eval mode, its family, the size it runs at, and where it came from."""

    model: nn.Module
    family: ModelFamily
    img_size: int
    checkpoint: Checkpoint | None = None
    source: dict = field(default_factory=dict)  # what the manifest's ``source`` records


def resolve_model(
    source: nn.Module | str | Path | Checkpoint, img_size: int | None = None, *, trust_pickle: bool = False
) -> ResolvedModel:
    """Load ``source`` and settle its input size.

    Args:
        source: a checkpoint path, a read :class:`Checkpoint`, or a reference ``nn.Module``.
        img_size: the size asked for; None takes the recorded one (or 224).
        trust_pickle: allow arbitrary unpickling (runs code) for checkpoint paths.

    Raises:
        CheckpointError: unreadable or unrecognised checkpoint.
        InputSizeError: the model cannot run at the size asked for.
    """
    if isinstance(source, nn.Module):
        model, ckpt, recorded = source.eval(), None, None
        family = family_of(model)
        info = {"type": "module", "class": type(source).__name__}
    else:
        ckpt = source if isinstance(source, Checkpoint) else read_checkpoint(source, trust_pickle=trust_pickle)
        family = get_family(ckpt.spec.family)
        # A size the tensors record is checked, not overridden (that only fails later, as a shape mismatch);
        # one they do not record (assumed) is the caller's to give, and builds the model at that size.
        assumed = "img_size" in ckpt.spec.assumed
        model = ckpt.to_model(**(family.size_overrides(img_size) if assumed else {}))
        recorded = ckpt.spec.img_size  # from the checkpoint's metadata when our writers stored it
        info = {
            "type": "checkpoint",
            "file": ckpt.path.name,
            "sha256": ckpt.sha256,
            "format": ckpt.file_format,
            "layout": ckpt.layout,
            "metadata": {k: v for k, v in ckpt.metadata.items() if k != "config"},
        }
    try:
        size = family.resolve_img_size(model, img_size, recorded)
    except ValueError as exc:
        raise InputSizeError(str(exc)) from None
    return ResolvedModel(model, family, size, ckpt, info)
