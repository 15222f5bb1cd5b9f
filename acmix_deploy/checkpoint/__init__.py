"""Safe checkpoint reading, architecture detection and official-layout writing."""

from .detect import ModelSpec, detect_spec, strip_prefixes
from .load import Checkpoint, load_checkpoint, load_weights, read_checkpoint
from .resolve import ResolvedModel, resolve_model
from .save import LAYOUTS, save_checkpoint

__all__ = [
    "LAYOUTS",
    "Checkpoint",
    "ModelSpec",
    "ResolvedModel",
    "detect_spec",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "resolve_model",
    "save_checkpoint",
    "strip_prefixes",
]
