"""Several optimisation profiles in one TensorRT engine: which batches each holds, which one serves a batch.

An engine may carry several optimisation profiles (``build --profile 1:1:4 --profile 8:16:32``):
kernels tuned for small batches (latency) and for large ones (throughput) in one plan. The engine
sidecar records every profile's batch range (``profiles``); this module, plain data and no
TensorRT, answers the runner's and the exporters' questions about them:

- :func:`pick_profile`: the profile that holds a batch (closest ``opt`` first, as Triton's
  TensorRT backend chooses), so the runner switches to it with ``set_optimization_profile_async``;
- :func:`split_batch`: a batch no profile holds (in a gap between profiles) split into pieces
  each profile holds;
- :func:`served_range`: the batches the engine serves as one range (its manifest's ``batch``,
  which Triton's ``max_batch_size`` follows): the union of the profiles, but only as far as every
  batch in between is held by some profile. A server that batches requests dynamically sends any
  size up to its limit, so a gap would fail there; past a gap the range stops, and the note says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .base import RunnerError


@dataclass(frozen=True)
class BatchRange:
    """One profile's batch sizes: ``min <= opt <= max``."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise RunnerError(f"a profile needs 1 <= min <= opt <= max, got {self.min}:{self.opt}:{self.max}")

    def holds(self, n: int) -> bool:
        return self.min <= n <= self.max

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def pick_profile(n: int, ranges: Sequence[BatchRange]) -> int | None:
    """The index of the profile that holds batch ``n`` with its ``opt`` closest to ``n`` (first on ties)."""
    holding = [(abs(r.opt - n), i) for i, r in enumerate(ranges) if r.holds(n)]
    return min(holding)[1] if holding else None


def split_batch(n: int, ranges: Sequence[BatchRange]) -> list[tuple[int, int]]:
    """``[(profile index, size), ...]`` covering batch ``n``: one piece when a profile holds it.

    Otherwise the largest profile maximum that fits is taken off, repeatedly (``1:1:4`` and
    ``8:16:32`` serve 6 as 4 + 2, and 40 as 32 + 8).

    Raises:
        RunnerError: a remainder is smaller than every profile's minimum.
    """
    pieces: list[tuple[int, int]] = []
    left = n
    while left > 0:
        index = pick_profile(left, ranges)
        if index is not None:
            pieces.append((index, left))
            break
        fitting = [(r.max, -i) for i, r in enumerate(ranges) if r.max <= left]
        if not fitting:
            profiles = ", ".join(map(str, ranges))
            raise RunnerError(f"batch {n} cannot be split into the engine's profiles ({profiles}): {left} is left over")
        size, neg_index = max(fitting)
        pieces.append((-neg_index, size))
        left -= size
    return pieces


def served_range(ranges: Sequence[BatchRange]) -> tuple[BatchRange, str | None]:
    """The one batch range the engine serves, and a note when profiles past a gap are left out of it.

    The range starts at the smallest minimum and grows through every profile that overlaps or
    touches it; its ``opt`` is the ``opt`` of the first profile given that lies in it.
    """
    if not ranges:
        raise RunnerError("an engine needs at least one optimisation profile")
    ordered = sorted(ranges, key=lambda r: (r.min, r.max))
    lo, hi = ordered[0].min, ordered[0].max
    for r in ordered[1:]:
        if r.min > hi + 1:
            break
        hi = max(hi, r.max)
    opt = next(r.opt for r in ranges if lo <= r.opt <= hi and r.min >= lo and r.max <= hi)
    left_out = [r for r in ranges if r.max > hi]
    note = None
    if left_out:
        gap = min(r.min for r in left_out)
        note = (
            f"the engine serves batches {lo}..{hi} as one range: batches {hi + 1}..{gap - 1} fall between its "
            f"profiles, so {', '.join(map(str, left_out))} is used by our runner (which splits batches) but not "
            "offered to servers that batch dynamically (Triton's max_batch_size)"
        )
    return BatchRange(lo, opt, hi), note


__all__ = ["BatchRange", "pick_profile", "served_range", "split_batch"]
