"""acmix-deploy: ship ACmix checkpoints as fast, validated ONNX, TensorRT and Triton artifacts."""

from .batching import BatchingPredictor
from .checkpoint import Checkpoint, ModelSpec, load_checkpoint, read_checkpoint
from .errors import AcmixDeployError, CheckpointError, UnsafeCheckpointError
from .models import build_model, list_models
from .predictor import Prediction, Predictor

__version__ = "0.1.0"

__all__ = [
    "AcmixDeployError",
    "BatchingPredictor",
    "Checkpoint",
    "CheckpointError",
    "ModelSpec",
    "Prediction",
    "Predictor",
    "UnsafeCheckpointError",
    "__version__",
    "build_model",
    "list_models",
    "load_checkpoint",
    "read_checkpoint",
]
