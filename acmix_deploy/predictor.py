"""Predictor: images in, top-k classes out, from any artifact (checkpoint, ONNX, engine).

Everything it needs comes from the artifact's manifest: input size, preprocessing, class count,
batch limits. Safe to call from many threads: preprocessing is per call, and the runner
serialises calls where its backend is not reentrant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import labels_for, read_labels
from .manifest import Manifest
from .preprocess import preprocess


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probability: float


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """Wraps one Runner with preprocessing, batching and class names."""

    def __init__(self, runner, labels: Sequence[str] | None = None) -> None:
        self.runner = runner.activate()
        if labels is None:
            labels = self.manifest.labels  # names recorded at export, if any
        self.labels = labels_for(self.manifest.num_classes, list(labels) if labels is not None else None)

    @classmethod
    def load(
        cls,
        path: str | Path,
        backend: str | None = None,
        device: str | None = None,
        labels: str | Path | Sequence[str] | None = None,
        **options,
    ) -> Predictor:
        """Open an artifact. ``options`` go to the backend (threads, rewrite, img_size, ...)."""
        from acmix_deploy.runtimes import open_runner

        if device is not None:
            options["device"] = device
        names = read_labels(labels) if isinstance(labels, str | Path) else labels
        return cls(open_runner(path, backend, **options), names)

    @property
    def manifest(self) -> Manifest:
        return self.runner.manifest

    def preprocess(self, images) -> np.ndarray:
        return preprocess(images, self.manifest.preprocessing)

    def infer(self, array: np.ndarray) -> np.ndarray:
        """Raw logits for an already-preprocessed (N, 3, H, W) float batch."""
        return self.runner.infer(array)

    def predict(self, images, top_k: int = 5, batch_size: int | None = None) -> list[list[Prediction]]:
        """Top-k predictions per image.

        Args:
            images: a path, PIL image, HWC uint8 array, NCHW float array, or a list of them.
            top_k: how many classes per image (capped at the class count).
            batch_size: images preprocessed and run per chunk (default: the artifact's max batch).
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            probs = softmax(self.infer(preprocess(images, self.manifest.preprocessing)))
            return self._top_k(probs, top_k)
        if not isinstance(images, list | tuple):
            images = [images]
        step = batch_size or self.runner.batch_limits[1]
        results: list[list[Prediction]] = []
        for i in range(0, len(images), step):
            batch = self.preprocess(list(images[i : i + step]))
            results += self._top_k(softmax(self.infer(batch)), top_k)
        return results

    def _top_k(self, probs: np.ndarray, top_k: int) -> list[list[Prediction]]:
        k = max(1, min(top_k, probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [Prediction(self.labels[j], int(j), float(row[j])) for j in idx]
            for row, idx in zip(probs, order, strict=True)
        ]

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
