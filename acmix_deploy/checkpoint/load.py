"""Read checkpoints safely, find the weights inside, and load them into the right model.

Checkpoints are untrusted input. Torch pickles are read by ``torch.load`` with our
:mod:`restricted_pickle` module, which builds tensors and plain containers and refuses every
other global before it is called, so no code in the file runs. The one non-tensor object
official checkpoints carry, the Swin training config (a pickled ``yacs.config.CfgNode``), is
rebuilt as a plain dict: it is read as data, and yacs need not be installed. Full unpickling
is available only through ``trust_pickle=True``.

Bounded by the file: every tensor view is checked against its storage and the bytes all tensors
claim against the file's size before anything is built (:mod:`restricted_pickle`). The pre-2018
tar checkpoint format is refused in every mode: torch extracts its members to a temporary folder,
links, device nodes and FIFOs included (a FIFO blocks the read forever). Metadata is copied as
plain data, nesting cut at ``text.MAX_DEPTH`` and strings escaped for terminals.
"""

from __future__ import annotations

import json
import tarfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, UnsafeCheckpointError
from ..fileio import sha256_file
from ..labels import label_problem
from ..text import MAX_DEPTH, safe_text
from . import restricted_pickle
from .detect import ModelSpec, detect_spec, strip_prefixes
from .restricted_pickle import PickledConfig
from .safetensors_io import looks_like_safetensors, read_safetensors

# Containers that official and common training scripts wrap the weights in, most specific first.
STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "model_ema", "state_dict_ema", "module")
RECOMPUTED_BUFFERS = ("relative_position_index", "attn_mask")
# Tensors may claim this much beyond the file's own size (tied weights are views of one storage).
CLAIM_SLACK_BYTES = 64 << 20


def _plain(value, depth: int = 0):
    """Metadata as JSON-friendly values (for inspect and manifests); tensors become numbers or shapes.

    Strings are escaped for terminals (:func:`acmix_deploy.text.safe_text`); nesting deeper than
    ``MAX_DEPTH`` (a self-referencing list, say) is cut to ``"..."``.
    """
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, PickledConfig):
        attrs = {k: v for k, v in value.__dict__.items() if not str(k).startswith("__")}
        return {safe_text(k): _plain(v, depth + 1) for k, v in {**attrs, **value}.items()}
    if isinstance(value, dict):
        return {safe_text(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"<tensor {list(value.shape)}>"
    if isinstance(value, str):
        return safe_text(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return safe_text(repr(value))


@dataclass
class Checkpoint:
    """A checkpoint read from disk: its weights, what they are, and what else the file told us."""

    path: Path
    sha256: str
    file_format: str  # "torch-zip" | "torch-legacy" | "safetensors"
    layout: str  # "state-dict" | "official-resnet" | "official-swin" | "wrapped"
    state_dict: dict[str, torch.Tensor]
    spec: ModelSpec
    metadata: dict = field(default_factory=dict)
    labels: list[str] | None = None  # class names in output order, when the file records valid ones

    def to_model(self, model: nn.Module | None = None, **overrides) -> nn.Module:
        """Load the weights into ``model`` (or a model built from the detected spec) in eval mode."""
        spec = self.spec.with_overrides(**overrides)
        if model is None:
            model = spec.build()
        load_weights(model, self.state_dict, source=str(self.path))
        return model.eval()

    def summary(self) -> dict:
        n_params = sum(t.numel() for k, t in self.state_dict.items() if not k.endswith(RECOMPUTED_BUFFERS))
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "format": self.file_format,
            "layout": self.layout,
            "tensors": len(self.state_dict),
            "parameters": n_params,
            **self.spec.summary(),
            "metadata": self.metadata,
        }


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> Checkpoint:
    """Read a checkpoint file and detect the model it holds, without running any pickled code.

    Args:
        path: ``.pth``, ``.pth.tar``, ``.pt`` (torch zip or legacy format) or ``.safetensors``.
        trust_pickle: unpickle arbitrary objects (runs code from the file). Only for files you trust.

    Raises:
        CheckpointError: missing, truncated or unrecognised file, or not an ACmix model.
        UnsafeCheckpointError: the pickle references code and ``trust_pickle`` is False.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: empty file")

    metadata: dict = {}
    if looks_like_safetensors(head):
        file_format = "safetensors"
        tensors, st_meta = read_safetensors(path)
        raw: object = tensors
        metadata.update({safe_text(k): v if k == "labels" else safe_text(v) for k, v in st_meta.items()})
    elif head[:4] == b"PK\x03\x04":
        file_format = "torch-zip"
        raw = _torch_load(path, trust_pickle)
    elif head[:1] == b"\x80":
        file_format = "torch-legacy"
        if _is_tar(path):
            raise CheckpointError(
                f"{path}: the pre-2018 tar checkpoint format is not read (torch would extract its members, "
                "links and devices included); re-save it with a PyTorch you trust: torch.save(torch.load(f), 'new.pth')"
            )
        raw = _torch_load(path, trust_pickle)
    else:
        raise CheckpointError(f"{path}: not a checkpoint (neither a torch file nor safetensors)")

    weights, layout, metadata_more = _find_state_dict(raw, path)
    metadata.update(metadata_more)
    state_dict = strip_prefixes(weights)
    try:
        spec = detect_spec(state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    spec = _apply_stored_config(spec, metadata)
    if layout == "wrapped":
        from ..families import get_family

        layout = get_family(spec.family).official_layout
    labels = _stored_labels(metadata, spec.num_classes, path)
    _warn_non_finite(state_dict, path)
    return Checkpoint(path, sha256_file(path), file_format, layout, state_dict, spec, metadata, labels)


def load_checkpoint(
    path: str | Path, *, model: nn.Module | None = None, trust_pickle: bool = False, **overrides
) -> nn.Module:
    """Load an ACmix checkpoint into a model in eval mode.

    Args:
        path: the checkpoint (see :func:`read_checkpoint`).
        model: load into this model instead of one built from the detected hyperparameters.
        trust_pickle: allow arbitrary unpickling (runs code from the file).
        **overrides: hyperparameters replacing detected ones, e.g. ``k_att=5`` or ``img_size=384``.
    """
    return read_checkpoint(path, trust_pickle=trust_pickle).to_model(model, **overrides)


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """Strictly load weights, with one clear error listing missing/unexpected keys and shape mismatches.

    Buffers we recompute from the configuration (``relative_position_index``, ``attn_mask``) may
    be absent; when present they must equal ours, which catches a wrong resolution or window.
    """
    own = model.state_dict()
    sd = strip_prefixes(state_dict)
    missing = [k for k in own if k not in sd and not k.endswith(RECOMPUTED_BUFFERS)]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k} {list(sd[k].shape)} vs model {list(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_abbrev(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_abbrev(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_abbrev(mismatched)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the model: " + "; ".join(problems))
    for k in own:
        if k.endswith(RECOMPUTED_BUFFERS) and k in sd and not torch.equal(sd[k].to(own[k].dtype), own[k]):
            raise CheckpointError(
                f"{source}: buffer {k} differs from the one this configuration implies (wrong img_size or window_size?)"
            )
    filled = {k: sd.get(k, own[k]) for k in own}
    model.load_state_dict(filled, strict=True)


def _abbrev(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def _is_tar(path: Path) -> bool:
    """Whether ``path`` opens as a tar archive (torch's oldest format), reading only its first header."""
    try:
        with tarfile.open(path, mode="r:"):
            return True
    except (tarfile.TarError, OSError, ValueError):
        return False


def _torch_load(path: Path, trust_pickle: bool) -> object:
    if trust_pickle:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any failure of a trusted unpickle is reported the same way
            raise CheckpointError(f"{path}: could not unpickle ({type(exc).__name__}: {exc})") from None
    try:
        with restricted_pickle.byte_budget(path.stat().st_size + CLAIM_SLACK_BYTES):
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except restricted_pickle.RefusedTensor as exc:
        raise CheckpointError(f"{path}: refused: {exc}; nothing was allocated for it") from None
    except restricted_pickle.RefusedGlobal as exc:
        names = _unsafe_globals(path) or [exc.name]
        raise UnsafeCheckpointError(
            f"{path}: refused: the pickle references {', '.join(names)}, which could run code on load; "
            "nothing was executed. If you trust this file, pass --trust-pickle (trust_pickle=True)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch's loader fails on damaged files in many ways (even AssertionError)
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({_first_line(exc)})") from None


def _unsafe_globals(path: Path) -> list[str]:
    """Every global of a zip checkpoint's pickle that we would refuse, listed without executing anything."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - legacy format or corrupt archive: the caller has the first name
        return []
    refused = []
    for full in names:
        module, _, name = full.rpartition(".")
        try:
            restricted_pickle.resolve(module, name)
        except restricted_pickle.RefusedGlobal:
            refused.append(full)
        except restricted_pickle.RefusedTensor:
            continue  # refused, but not because it could run code
    return refused


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _find_state_dict(raw: object, path: Path) -> tuple[dict[str, torch.Tensor], str, dict]:
    """Locate the weights in a loaded object; return (weights, layout, other metadata)."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict or checkpoint dict")
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return dict(raw), "state-dict", {}
    for key in STATE_DICT_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner), "wrapped", _metadata(raw, key)
    keys = ", ".join(map(str, list(raw)[:6]))
    raise CheckpointError(f"{path}: no weights found (top-level keys: {keys})")


def _metadata(raw: Mapping, weights_key: str) -> dict:
    out: dict = {"weights_key": weights_key}
    for key in ("epoch", "arch", "best_acc1", "max_accuracy", "acc1", "img_size", "labels"):
        if key in raw:
            out[key] = _plain(raw[key])
    for key in ("optimizer", "lr_scheduler", "scheduler", "amp"):
        if key in raw:
            out.setdefault("training_state", []).append(key)
    if isinstance(raw.get("config"), dict):
        out["config"] = _plain(raw["config"])
    return out


def _apply_stored_config(spec: ModelSpec, metadata: Mapping) -> ModelSpec:
    """Take the training resolution from the checkpoint's metadata when the tensors could not tell it.

    Sources: an ``img_size`` entry (our writers add it to ACmix-ResNet checkpoints; safetensors
    metadata holds it as a string) or a stored Swin config's ``DATA.IMG_SIZE``.
    """
    if "img_size" not in spec.assumed:
        return spec
    size = metadata.get("img_size")
    if isinstance(size, str) and size.isascii() and size.isdecimal():
        size = int(size)
    config = metadata.get("config")
    if not isinstance(size, int) and isinstance(config, Mapping) and isinstance(config.get("DATA"), Mapping):
        size = config["DATA"].get("IMG_SIZE")
    if type(size) is int and 0 < size <= 4096:
        return spec.with_overrides(img_size=size)
    return spec


def _stored_labels(metadata: dict, num_classes: int, path: Path) -> list[str] | None:
    """The class names the file records (our writers' ``labels`` entry or safetensors metadata), if usable.

    Taken out of ``metadata`` (they are ``Checkpoint.labels``). Unusable names are ignored with a
    warning rather than refusing the weights: the checkpoint still loads, with generic class names.
    """
    labels = metadata.pop("labels", None)
    if labels is None:
        return None
    if isinstance(labels, str):  # safetensors metadata holds strings: the list as JSON
        try:
            labels = json.loads(labels)
        except (json.JSONDecodeError, RecursionError):
            labels = None
    problem = label_problem(labels, num_classes)
    if problem:
        warnings.warn(f"{path}: recorded class names ignored: {problem}", stacklevel=3)
        return None
    return labels


def _warn_non_finite(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    bad = [k for k, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        warnings.warn(f"{path}: non-finite values (NaN/Inf) in {len(bad)} tensors: {_abbrev(bad)}", stacklevel=3)


__all__ = ["Checkpoint", "ModelSpec", "load_checkpoint", "load_weights", "read_checkpoint"]
