"""Runtimes: one Runner interface over torch, ONNX Runtime and TensorRT. Never imports exporters.

``open_runner(path)`` picks the backend from the file suffix (``.onnx`` -> onnxruntime,
``.engine``/``.plan`` -> tensorrt, checkpoints -> torch) unless ``backend=`` forces one.
Backend modules are imported on demand, so ``import acmix_deploy.runtimes`` pulls in no heavy package.
"""

from __future__ import annotations

from pathlib import Path

from .base import MissingDependencyError, Runner, RunnerError

BACKENDS = ("torch", "onnxruntime", "tensorrt")
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".safetensors", ".bin", ".ckpt")


def backend_for(path: str | Path) -> str:
    name = Path(path).name.lower()
    if name.endswith(".onnx"):
        return "onnxruntime"
    if name.endswith((".engine", ".plan", ".trt")):
        return "tensorrt"
    if name.endswith(_CHECKPOINT_SUFFIXES):
        return "torch"
    raise RunnerError(f"{path}: cannot tell the format from the suffix; pass a backend ({', '.join(BACKENDS)})")


def open_runner(path: str | Path, backend: str | None = None, **options) -> Runner:
    """A (lazily loaded) Runner for ``path``; ``options`` go to the backend's constructor."""
    backend = backend or backend_for(path)
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, **options)
    if backend == "torch":
        from .torch import TorchRunner

        return TorchRunner(path, **options)
    if backend == "tensorrt":
        from .tensorrt import TensorRTRunner

        return TensorRTRunner(path, **options)
    raise RunnerError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MissingDependencyError", "Runner", "RunnerError", "backend_for", "open_runner"]
