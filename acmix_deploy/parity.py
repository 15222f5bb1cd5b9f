"""Numerical agreement between two sets of logits: the measure behind export validation and `verify`.

Plain numpy, no runtime: exporters use it to prove an artifact, the CLI's ``verify`` to compare
artifacts with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import AcmixDeployError

RANDOM_INPUTS = "standard normal, seeded"  # what random_inputs() draws: the default description of a run's inputs


@dataclass(frozen=True)
class Tolerance:
    """Pass when max|a-b| <= rtol * max(1, max|ref|), cosine >= min_cosine, and top-1 agrees."""

    rtol: float = 1e-4
    min_cosine: float = 0.99999
    min_top1_agreement: float = 1.0


@dataclass
class ParityReport:
    batches: list[int]
    max_abs_diff: float
    max_abs_ref: float
    mean_abs_diff: float
    cosine_min: float
    top1_agreement: float
    passed: bool
    tolerance: dict
    inputs: str = RANDOM_INPUTS  # what the compared outputs were computed from, as the caller described it

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"max|diff| {self.max_abs_diff:.2e} (ref scale {self.max_abs_ref:.2f}), cosine {self.cosine_min:.7f}, "
            f"top-1 agreement {self.top1_agreement:.0%} over batches {self.batches}"
        )


def random_inputs(batch: int, img_size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, img_size, img_size), dtype=np.float32)


def compare_outputs(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    batches: list[int],
    tolerance: Tolerance,
    *,
    inputs: str = RANDOM_INPUTS,
) -> ParityReport:
    """Compare two runs over the same inputs, batch by batch.

    Args:
        reference: the reference outputs, one array per batch.
        candidate: the outputs under test, in the same order and shapes.
        batches: the batch sizes, recorded in the report.
        tolerance: the pass criteria.
        inputs: what the outputs were computed from, recorded in the report, e.g.
            ``"3 images (resize 73, crop 64, bilinear)"``; the default describes :func:`random_inputs`.

    Raises:
        AcmixDeployError: the shapes differ, or ``inputs`` is empty.
    """
    if not isinstance(inputs, str) or not inputs.strip():
        raise AcmixDeployError("the description of the compared inputs must be a non-empty string")
    ref = np.concatenate([r.reshape(r.shape[0], -1) for r in reference]).astype(np.float64)
    out = np.concatenate([c.reshape(c.shape[0], -1) for c in candidate]).astype(np.float64)
    if ref.shape != out.shape:
        raise AcmixDeployError(f"output shape {out.shape} differs from the reference {ref.shape}")
    diff = np.abs(ref - out)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.sum(ref * out, axis=1) / np.maximum(norms, 1e-30)
    top1 = float(np.mean(ref.argmax(1) == out.argmax(1)))
    max_ref = float(np.abs(ref).max())
    max_diff = float(diff.max()) if diff.size else 0.0
    passed = (
        bool(np.isfinite(out).all())
        and max_diff <= tolerance.rtol * max(1.0, max_ref)
        and float(cosine.min()) >= tolerance.min_cosine
        and top1 >= tolerance.min_top1_agreement
    )
    return ParityReport(
        batches=batches,
        max_abs_diff=max_diff,
        max_abs_ref=max_ref,
        mean_abs_diff=float(diff.mean()),
        cosine_min=float(cosine.min()),
        top1_agreement=top1,
        passed=passed,
        tolerance=asdict(tolerance),
        inputs=inputs,
    )
