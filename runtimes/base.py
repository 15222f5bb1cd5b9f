"""The Runner interface every backend implements: load lazily, describe the input, infer logits.

Backends implement only the hooks ``_load``, ``_infer`` and ``_close``. The base class checks
inputs, splits batches larger than the artifact allows, serialises calls where a backend is not
reentrant, and records the last inference time, so the Predictor and the profiler talk to one
interface whatever the format.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.manifest import Manifest


class RunnerError(AcmixDeployError):
    """A runtime could not load an artifact or run it."""


class MissingDependencyError(RunnerError):
    """An optional package a backend needs is not installed."""


class Runner(ABC):
    """One loaded artifact. Use as a context manager or call :meth:`close`."""

    backend: str = "base"
    thread_safe: bool = True  # False: calls are serialised with a lock

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._manifest: Manifest | None = None
        self._loaded = False
        self._load_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self.last_inference_seconds: float | None = None

    # -- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _load(self) -> Manifest:
        """Load the artifact; return its manifest."""

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 NCHW batch within the batch limits."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- public ------------------------------------------------------------------------------
    def activate(self) -> Runner:
        with self._load_lock:
            if not self._loaded:
                self._manifest = self._load()
                self._loaded = True
        return self

    @property
    def manifest(self) -> Manifest:
        """The artifact's manifest; loads the artifact on first use. A closed runner keeps the manifest
        it loaded (metadata stays true after close), so asking for it does not load the artifact again."""
        if self._manifest is None:
            self.activate()
        assert self._manifest is not None
        return self._manifest

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        return self.manifest.input_shape

    @property
    def batch_limits(self) -> tuple[int, int]:
        return self.manifest.batch.min, self.manifest.batch.max

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) for an (N, 3, H, W) float batch; large batches are split."""
        self.activate()
        size = self.manifest.img_size
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            shape = getattr(batch, "shape", type(batch).__name__)
            raise RunnerError(f"expected a (N, 3, {size}, {size}) array, got {shape}")
        if not np.issubdtype(batch.dtype, np.floating):
            raise RunnerError(f"expected a float array, got {batch.dtype}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        hi = self.batch_limits[1]
        dynamic = self.manifest.batch.dynamic
        t0 = time.perf_counter()
        if not dynamic:
            out = self._infer_fixed(batch, hi)
        else:
            chunks = [batch[i : i + hi] for i in range(0, len(batch), hi)]
            out = np.concatenate([self._call(chunk) for chunk in chunks]) if chunks else self._empty()
        self.last_inference_seconds = time.perf_counter() - t0
        return out

    def _infer_fixed(self, batch: np.ndarray, fixed: int) -> np.ndarray:
        """A fixed-batch artifact: pad the last chunk with zeros and drop the padding's outputs."""
        outs = []
        for i in range(0, len(batch), fixed):
            chunk = batch[i : i + fixed]
            n = len(chunk)
            if n < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), np.float32)])
            outs.append(self._call(chunk)[:n])
        return np.concatenate(outs) if outs else self._empty()

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.manifest.num_classes), np.float32)

    def _call(self, chunk: np.ndarray) -> np.ndarray:
        if self.thread_safe:
            return self._infer(chunk)
        with self._call_lock:
            return self._infer(chunk)

    def close(self) -> None:
        with self._load_lock:
            if self._loaded:
                self._close()
                self._loaded = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.backend}:{self.path.name}"
