"""Safe checkpoint reading, architecture detection and official-layout writing."""

from .detect import ModelSpec, detect_spec, strip_prefixes
from .load import Checkpoint, load_checkpoint, load_weights, read_checkpoint
from .save import LAYOUTS, save_checkpoint

__all__ = [
    "LAYOUTS",
    "Checkpoint",
    "ModelSpec",
    "detect_spec",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "save_checkpoint",
    "strip_prefixes",
]
