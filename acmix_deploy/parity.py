"""Numerical agreement between two sets of logits: the measure behind export validation and `verify`.

Plain numpy, no runtime: exporters use it to prove an artifact, the CLI's ``verify`` to compare
artifacts with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import AcmixDeployError

RANDOM_INPUTS = "standard normal, seeded"  # what random_inputs() draws: the default description of a run's inputs
PERCENTILES = (50, 90, 99)  # the error distribution a report records, besides the max
# Relative error is |a - b| / max(|b|, REL_ERROR_FLOOR * max|b| of that sample), b the reference. Logits cross
# zero, and a plain |a - b| / |b| there is unbounded noise that would swamp every percentile; flooring the
# denominator at a thousandth of the sample's own largest logit measures the small logits against the scale
# that decides the prediction, and equals the plain relative error wherever |b| is above that floor.
REL_ERROR_FLOOR = 1e-3


@dataclass(frozen=True)
class Tolerance:
    """Pass when max|a-b| <= rtol * max(1, max|ref|), cosine >= min_cosine, and top-1 agrees."""

    rtol: float = 1e-4
    min_cosine: float = 0.99999
    min_top1_agreement: float = 1.0

    def loosest(self, other: Tolerance) -> Tolerance:
        """Field by field the more permissive of the two (a comparison is as loose as its least precise side)."""
        return Tolerance(
            max(self.rtol, other.rtol),
            min(self.min_cosine, other.min_cosine),
            min(self.min_top1_agreement, other.min_top1_agreement),
        )


# What a healthy artifact of each precision meets against its fp32 source on representative inputs: the
# defaults of ``verify`` where a variant's manifest records no bounds of its own. They are the bounds the
# exporters prove variants to (exporters.precision's FP16_TOLERANCE and INT8_TOLERANCE, on held-out images,
# are these entries: one table, owned here because the core cannot import the exporters).
PRECISION_TOLERANCES = {
    "fp32": Tolerance(),
    "mixed": Tolerance(rtol=2e-2, min_cosine=0.9995, min_top1_agreement=0.9),
    "fp16": Tolerance(rtol=2e-2, min_cosine=0.9995, min_top1_agreement=0.9),
    "int8": Tolerance(rtol=0.5, min_cosine=0.8, min_top1_agreement=0.95),
}
# A calibrated (static) int8 model on standard-normal inputs: they lie far outside the calibrated ranges and
# are clipped (export measured cosine 0.79 and 50% agreement on them for a healthy model), so only gross
# breakage is checked; real images (verify --image / --load-inputs) get PRECISION_TOLERANCES["int8"].
INT8_RANDOM_INPUTS_TOLERANCE = Tolerance(rtol=1.0, min_cosine=0.5, min_top1_agreement=0.0)


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
    abs_error: dict = field(default_factory=dict)  # {"p50", "p90", "p99"} of |a - b| over every output value
    rel_error: dict = field(default_factory=dict)  # the same of the relative error (see REL_ERROR_FLOOR)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"max|diff| {self.max_abs_diff:.2e} (ref scale {self.max_abs_ref:.2f}), cosine {self.cosine_min:.7f}, "
            f"top-1 agreement {self.top1_agreement:.0%} over batches {self.batches}"
        )

    def describe_errors(self) -> str:
        """``|diff| p50/p90/p99 1.1e-03/3.0e-03/4.3e-03, relative 2.0e-03/...``: the error distribution."""
        return f"|diff| p50/p90/p99 {format_percentiles(self.abs_error)}, relative {format_percentiles(self.rel_error)}"


def format_percentiles(errors: dict, sep: str = "/") -> str:
    """``1.1e-03/3.0e-03/4.3e-03``: the :data:`PERCENTILES` of an ``abs_error``/``rel_error`` dict (nan if absent)."""
    return sep.join(f"{errors.get(f'p{q}', float('nan')):.1e}" for q in PERCENTILES)


def error_percentiles(reference: np.ndarray, candidate: np.ndarray) -> tuple[dict, dict]:
    """The p50/p90/p99 of the absolute and of the relative error of (N, ...) outputs (``REL_ERROR_FLOOR``)."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    diff = np.abs(ref - candidate.reshape(len(candidate), -1).astype(np.float64))
    if not diff.size:
        zero = {f"p{q}": 0.0 for q in PERCENTILES}
        return zero, dict(zero)
    scale = np.abs(ref).max(axis=1, keepdims=True)
    denominator = np.maximum(np.abs(ref), REL_ERROR_FLOOR * scale)
    relative = diff / np.maximum(denominator, np.finfo(np.float64).tiny)  # an all-zero sample: any error is huge
    absolute = np.percentile(diff, PERCENTILES)
    rel = np.percentile(relative, PERCENTILES)
    return (
        {f"p{q}": float(v) for q, v in zip(PERCENTILES, absolute, strict=True)},
        {f"p{q}": float(v) for q, v in zip(PERCENTILES, rel, strict=True)},
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
    abs_error, rel_error = error_percentiles(ref, out)
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
        abs_error=abs_error,
        rel_error=rel_error,
    )
