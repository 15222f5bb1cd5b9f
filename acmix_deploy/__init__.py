"""acmix-deploy: ship ACmix checkpoints as fast, validated ONNX, TensorRT and Triton artifacts.

The public names below are imported on first use, so ``import acmix_deploy`` (and every
``acmix-deploy`` command that needs no model) does not pay for torch or ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that owns it
_EXPORTS = {
    "AcmixDeployError": ".errors",
    "CheckpointError": ".errors",
    "UnsafeCheckpointError": ".errors",
    "Checkpoint": ".checkpoint",
    "ModelSpec": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "read_checkpoint": ".checkpoint",
    "build_model": ".models",
    "list_models": ".models",
    "Manifest": ".manifest",
    "read_manifest": ".manifest",
    "Prediction": ".predictor",
    "Predictor": ".predictor",
    "BatchingPredictor": ".batching",
}

__all__ = [
    "AcmixDeployError",
    "BatchingPredictor",
    "Checkpoint",
    "CheckpointError",
    "Manifest",
    "ModelSpec",
    "Prediction",
    "Predictor",
    "UnsafeCheckpointError",
    "__version__",
    "build_model",
    "list_models",
    "load_checkpoint",
    "read_checkpoint",
    "read_manifest",
]

if TYPE_CHECKING:
    from .batching import BatchingPredictor
    from .checkpoint import Checkpoint, ModelSpec, load_checkpoint, read_checkpoint
    from .errors import AcmixDeployError, CheckpointError, UnsafeCheckpointError
    from .manifest import Manifest, read_manifest
    from .models import build_model, list_models
    from .predictor import Prediction, Predictor


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
