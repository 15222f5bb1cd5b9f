"""Interleaved timing: candidates run in turn, round after round, so machine drift hits all alike.

Shared machines are noisy; timing candidate A for a minute and then candidate B lets a
neighbour's load land on one of them only. Alternating per round and comparing medians
keeps ratios honest. This module is the one timer: warm-up (by rounds and by time), measurement
windows repeated until their medians settle (``time_windows``), and speed verdicts that are only
stated when a ratio is outside the run-to-run noise measured alongside it (``compare_speed``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


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


class CallHook(Protocol):
    """Called around each timed call, outside the timed span (the benchmark's memory probe is one)."""

    def before(self, index: int) -> None: ...

    def after(self, index: int) -> None: ...


def _call(fn: Callable[[], object], index: int, hook: CallHook | None) -> float:
    if hook is not None:
        hook.before(index)
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    if hook is not None:
        hook.after(index)
    return elapsed


@dataclass(frozen=True)
class Warmup:
    """What the untimed warm-up did: interleaved rounds, and the wall time they took."""

    rounds: int
    seconds: float


def warm_up(
    calls: Sequence[Callable[[], object]], *, rounds: int = 1, seconds: float = 0.0, hook: CallHook | None = None
) -> Warmup:
    """Untimed interleaved rounds until at least ``rounds`` are done and ``seconds`` have passed.

    Time-based like trtexec's ``--warmUp``: a fixed count of rounds is too few for a fast model
    (thread pools, allocator arenas and CPU clocks still settling) and too many for a slow one.
    """
    start = time.perf_counter()
    done = 0
    while calls and (done < rounds or time.perf_counter() - start < seconds):
        for i, fn in enumerate(calls):
            _call(fn, i, hook)
        done += 1
    return Warmup(rounds=done, seconds=time.perf_counter() - start)


def _order(n: int, round_index: int) -> list[int]:
    """Round ``k`` starts with candidate ``k mod n``: no candidate always runs first or last.

    A fixed order lets position bias in (measured here: the same model twice, second in every
    round, came out 1.1-1.2x "faster" at batch 8); rotating spreads it over all candidates.
    """
    shift = round_index % n if n else 0
    return [*range(shift, n), *range(shift)]


def time_rounds(
    calls: Sequence[Callable[[], object]],
    *,
    rounds: int | None = 10,
    seconds: float | None = None,
    hook: CallHook | None = None,
) -> list[list[float]]:
    """One measurement window: each call once per round, in turn; per-call durations in seconds.

    The order rotates from round to round (:func:`_order`); ``samples[i][k]`` is call ``i`` in round ``k``.

    Stops after ``rounds`` rounds, or once ``seconds`` have passed (``seconds`` wins when both are given).
    """
    samples: list[list[float]] = [[] for _ in calls]
    start = time.perf_counter()
    done = 0
    while True:
        for i in _order(len(calls), done):
            samples[i].append(_call(calls[i], i, hook))
        done += 1
        if seconds is not None:
            if time.perf_counter() - start >= seconds:
                break
        elif done >= (rounds or 10):
            break
    return samples


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / min: how far apart a set of medians is, as a fraction of the smallest."""
    lo = min(values)
    return (max(values) - lo) / lo if lo > 0 else float("inf")


def stability_reached(window_medians: Sequence[Sequence[float]], pct: float) -> bool:
    """True when, for every candidate, its last two window medians differ by at most ``pct`` percent.

    ``window_medians[c]`` is candidate ``c``'s median per window, in order. With several candidates
    every one must have settled: a comparison is only as stable as its noisiest side.
    """
    if not window_medians or any(len(m) < 2 for m in window_medians):
        return False
    return all(relative_spread(m[-2:]) * 100.0 <= pct for m in window_medians)


@dataclass
class WindowedTiming:
    """Samples of interleaved measurement windows, with how the warm-up and the stability check went.

    ``samples[c]`` holds candidate ``c``'s durations (seconds) from the windows its statistics
    describe: the last two windows when a stability target was set (the pair that agreed, or the
    last pair measured), else the single window. ``window_medians[c]`` lists every window's median (ms).
    """

    samples: list[list[float]]
    window_medians: list[list[float]]
    warmup: Warmup
    stability_pct: float | None = None
    max_windows: int = 1
    stable: bool | None = None  # None: no stability target was set
    window_samples: list[list[list[float]]] = field(default_factory=list)  # [window][candidate] -> seconds

    def stability_dict(self) -> dict:
        return {
            "target_pct": self.stability_pct,
            "max_windows": self.max_windows,
            "windows": len(self.window_samples),
            "reached": self.stable,
            "status": "off" if self.stable is None else "stable" if self.stable else "unstable",
        }


def time_windows(
    calls: Sequence[Callable[[], object]],
    *,
    rounds: int | None = 20,
    seconds: float | None = None,
    warmup_rounds: int = 1,
    warmup_s: float = 0.0,
    stability_pct: float | None = None,
    max_windows: int = 10,
    hook: CallHook | None = None,
    on_window: Callable[[int, list[float]], None] | None = None,
) -> WindowedTiming:
    """Warm up, then time interleaved windows (``rounds`` or ``seconds`` each) until they settle.

    Without ``stability_pct`` one window is measured. With it, windows repeat until every
    candidate's last two window medians agree within ``stability_pct`` percent
    (:func:`stability_reached`), or ``max_windows`` have run: then the result is flagged unstable
    rather than passed off as a settled figure. Candidates stay interleaved within every window.
    ``on_window(k, medians_ms)`` reports each finished window (progress).
    """
    warm = warm_up(calls, rounds=warmup_rounds, seconds=warmup_s, hook=hook)
    limit = 1 if stability_pct is None else max(2, max_windows)
    windows: list[list[list[float]]] = []
    medians: list[list[float]] = [[] for _ in calls]
    stable: bool | None = None
    while len(windows) < limit:
        window = time_rounds(calls, rounds=rounds, seconds=seconds, hook=hook)
        windows.append(window)
        for c, values in enumerate(window):
            medians[c].append(1000.0 * statistics.median(values))
        if on_window is not None:
            on_window(len(windows), [m[-1] for m in medians])
        if stability_pct is not None and stability_reached(medians, stability_pct):
            stable = True
            break
    if stability_pct is not None and stable is None:
        stable = False
    used = windows[-2:] if stability_pct is not None else windows[-1:]
    samples = [[s for w in used for s in w[c]] for c in range(len(calls))]
    return WindowedTiming(
        samples=samples,
        window_medians=medians,
        warmup=warm,
        stability_pct=stability_pct,
        max_windows=limit,
        stable=stable,
        window_samples=windows,
    )


def time_interleaved(
    candidates: Mapping[str, Callable[[], object]], *, rounds: int = 10, warmup: int = 1
) -> dict[str, LatencyStats]:
    """Call each candidate once per round, in turn; return per-candidate latency statistics."""
    timing = time_windows(list(candidates.values()), rounds=rounds, warmup_rounds=warmup)
    return {name: summarize(values) for name, values in zip(candidates, timing.samples, strict=True)}


# ---------------------------------------------------------------------------------- speed verdicts


@dataclass(frozen=True)
class SpeedComparison:
    """A candidate's speed against a reference: ratio of medians (>1: faster) and the noise around it.

    ``noise`` is a fraction: the larger of half the interquartile range of the per-round ratios
    (reference call / candidate call in the same round) relative to their median, and, with several
    windows, half the range of the per-window ratios relative to the overall ratio. ``None`` where
    nothing was measured to bound it.
    """

    ratio: float
    noise: float | None

    @property
    def verdict(self) -> str:
        """``faster``, ``slower``, ``within noise``, or ``unknown`` (no noise measured)."""
        if self.noise is None:
            return "unknown"
        if abs(self.ratio - 1.0) <= self.noise:
            return "within noise"
        return "faster" if self.ratio > 1.0 else "slower"

    @classmethod
    def from_record(cls, ratio: float, noise_pct: float | None) -> SpeedComparison:
        """From a recorded report (``speedup_vs_fp32``, ``noise_pct``; older reports have no noise)."""
        return cls(ratio=float(ratio), noise=None if noise_pct is None else float(noise_pct) / 100.0)

    def to_dict(self) -> dict:
        return {
            "ratio": round(self.ratio, 3),
            "noise_pct": None if self.noise is None else round(100.0 * self.noise, 1),
            "verdict": self.verdict,
        }


def compare_speed(
    reference: Sequence[float],
    candidate: Sequence[float],
    *,
    window_medians: tuple[Sequence[float], Sequence[float]] | None = None,
) -> SpeedComparison:
    """Ratio of median durations (reference / candidate) and its noise, from interleaved samples.

    ``reference[k]`` and ``candidate[k]`` must come from the same round (as :func:`time_rounds`
    gives them), so each per-round ratio sees the same machine state. ``window_medians`` (the two
    candidates' per-window medians) adds the window-to-window spread of the ratio.
    """
    ratio = statistics.median(reference) / statistics.median(candidate)
    paired = sorted(r / c for r, c in zip(reference, candidate, strict=False) if c > 0)
    noise: float | None = None
    if len(paired) >= 4:
        mid = _percentile(paired, 0.5)
        noise = (_percentile(paired, 0.75) - _percentile(paired, 0.25)) / 2.0 / mid
    if window_medians is not None and min(len(window_medians[0]), len(window_medians[1])) >= 2:
        per_window = [r / c for r, c in zip(*window_medians, strict=False) if c > 0]
        spread = (max(per_window) - min(per_window)) / 2.0 / ratio
        noise = spread if noise is None else max(noise, spread)
    return SpeedComparison(ratio=ratio, noise=noise)


def speed_verdict(comparison: SpeedComparison, reference: str | None = None) -> str:
    """The one wording of a speed comparison: a verdict only when the ratio is outside the noise.

    With ``reference`` (``"fp32"``): ``1.45x, faster than fp32 (noise ±4%)``, ``0.90x, within noise
    (±12%) of fp32``. Without it, the short form for a table column: ``1.45x faster``, ``0.90x ±12%``.
    """
    r, noise = comparison.ratio, comparison.noise
    verdict = comparison.verdict
    pm = "" if noise is None else f"±{100.0 * noise:.0f}%"
    if reference is None:
        if verdict in ("faster", "slower"):
            return f"{r:.2f}x {verdict}"
        return f"{r:.2f}x {pm}".rstrip()
    if verdict == "unknown":
        return f"{r:.2f}x vs {reference} (noise not measured)"
    if verdict == "within noise":
        return f"{r:.2f}x, within noise ({pm}) of {reference}"
    return f"{r:.2f}x, {verdict} than {reference} (noise {pm})"
