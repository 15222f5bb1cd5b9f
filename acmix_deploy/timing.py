"""Interleaved timing: candidates run in turn, round after round, so machine drift hits all alike.

Shared machines are noisy; timing candidate A for a minute and then candidate B lets a
neighbour's load land on one of them only. Alternating per round and comparing medians
keeps ratios honest.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one candidate in milliseconds."""

    n: int
    min: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _percentile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(seconds: list[float]) -> LatencyStats:
    ms = sorted(1000.0 * s for s in seconds)
    if not ms:
        raise ValueError("no timings to summarize")
    return LatencyStats(
        n=len(ms),
        min=ms[0],
        mean=statistics.fmean(ms),
        p50=_percentile(ms, 0.5),
        p90=_percentile(ms, 0.9),
        p95=_percentile(ms, 0.95),
        p99=_percentile(ms, 0.99),
        max=ms[-1],
        std=statistics.pstdev(ms),
    )


def time_interleaved(
    candidates: Mapping[str, Callable[[], object]], *, rounds: int = 10, warmup: int = 1
) -> dict[str, LatencyStats]:
    """Call each candidate once per round, in turn; return per-candidate latency statistics."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: summarize(values) for name, values in samples.items()}
