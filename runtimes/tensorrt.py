"""TensorRT backend slot. The engine runner arrives with the TensorRT issue (#6).

``tensorrt`` is imported only here and only when a TensorRT runner is asked for, so the package
works without it.
"""

from __future__ import annotations

from pathlib import Path

from .base import MissingDependencyError, Runner, RunnerError


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: pip install 'acmix-deploy[tensorrt]' on a machine with an NVIDIA GPU"
        ) from None
    return tensorrt


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, path: str | Path, **options) -> None:
        super().__init__(path)
        self.options = options

    def _load(self):
        import_tensorrt()
        raise RunnerError("running TensorRT engines is not implemented yet (tracked in the TensorRT issue)")

    def _infer(self, batch):  # pragma: no cover - unreachable until _load succeeds
        raise RunnerError("TensorRT runner not loaded")
