"""``acmix-deploy benchmark``: latency and throughput of one or more artifacts, side by side.

For each batch size, every runner is called in turn (interleaved rounds, :mod:`acmix_deploy.timing`),
so machine drift hits all alike; ratios are against the first artifact, and a ratio is called
faster or slower only when it is outside the run-to-run noise measured alongside it
(:func:`acmix_deploy.timing.speed_verdict`). Each batch size starts with a time-based warm-up
(like trtexec's ``--warmUp``, default 200 ms, at least ``warmup`` rounds); with a stability target,
measurement windows repeat until consecutive window medians agree (Model Navigator's stability
windows), else the row is flagged unstable. On CUDA, host<->device copies are part of each
backend's ``infer`` (end-to-end latency, as an application sees it).

Memory is per artifact (:mod:`.memory`): ``load_rss_mb`` is the resident memory its load added and
kept, ``run_peak_rss_mb`` the highest resident growth one of its calls at that batch reached above
the resident size just before it (the first call's buffer allocation included). The process's
lifetime peak, which no single artifact owns, is reported once in the settings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import AcmixDeployError
from ..timing import (
    LatencyStats,
    SpeedComparison,
    compare_speed,
    relative_spread,
    speed_verdict,
    summarize,
    time_windows,
)
from .concurrency import ConcurrencyResult, concurrency_benchmark
from .memory import MemoryProbe, current_rss_mb, release_free_memory
from .plot import plot

#: p99 above this multiple of p50 prints a variance warning (trtexec warns on unstable timings too).
#: At 1.5x, one call in a hundred took half as long again as the typical one: a neighbour's load,
#: frequency scaling or a thread-pool hiccup, large enough to move a side-by-side ratio.
VARIANCE_P99_OVER_P50 = 1.5
#: Default time-based warm-up per batch size, seconds (trtexec's ``--warmUp`` default is 200 ms).
DEFAULT_WARMUP_S = 0.2
DEFAULT_MAX_WINDOWS = 10

MEMORY_NOTE = (
    "memory: load MB = resident growth kept after loading the artifact; peak MB = highest resident growth\n"
    "  during one of its calls above the size just before it (host memory only, measured in this process)"
)

Progress = Callable[[str, str], None]

__all__ = [
    "BenchmarkError",
    "BenchmarkResult",
    "BenchmarkRow",
    "ConcurrencyResult",
    "benchmark",
    "concurrency_benchmark",
    "current_rss_mb",
    "plot",
]


class BenchmarkError(AcmixDeployError, ValueError):
    """The artifacts cannot be benchmarked together (they disagree on the input size)."""


@dataclass
class BenchmarkRow:
    artifact: str
    backend: str
    batch: int
    stats: LatencyStats
    throughput: float  # images per second at the median latency
    speedup_vs_first: float  # median latency of the first artifact / this one (>1: faster); its JSON key too
    load_rss_mb: float | None  # resident memory this artifact's loading added and kept
    cuda_phases_ms: dict | None = None  # median h2d / compute / d2h from CUDA events, when the backend has them
    speed: SpeedComparison | None = None  # vs the first artifact, with the noise bounding a verdict
    run_peak_rss_mb: float | None = None  # highest resident growth during one of its calls at this batch
    load_peak_rss_mb: float | None = None  # highest resident growth during its load (transients included)
    window_p50_ms: list[float] = field(default_factory=list)  # each measurement window's median
    floor_ms: float | None = None  # --floor: this artifact's MACs at the GEMM probe's rate (CPU artifacts)

    @property
    def ratio_to_floor(self) -> float | None:
        return None if self.floor_ms is None else self.stats.p50 / self.floor_ms

    @property
    def p99_over_p50(self) -> float:
        return self.stats.p99 / self.stats.p50 if self.stats.p50 > 0 else float("inf")

    @property
    def variance_warning(self) -> bool:
        return self.p99_over_p50 > VARIANCE_P99_OVER_P50

    def vs_first(self, first: bool) -> str:
        if first:
            return "reference"
        return speed_verdict(self.speed) if self.speed else f"{self.speedup_vs_first:.2f}x"

    def to_dict(self) -> dict:
        def mb(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "batch": self.batch,
            **{f"{k}_ms": round(v, 3) for k, v in self.stats.to_dict().items() if k != "n"},
            "iterations": self.stats.n,
            "throughput_ips": round(self.throughput, 2),
            "speedup_vs_first": round(self.speedup_vs_first, 3),
            "speed_vs_first": self.speed.to_dict() if self.speed else None,
            "p99_over_p50": round(self.p99_over_p50, 3),
            "variance_warning": self.variance_warning,
            "window_p50_ms": [round(v, 3) for v in self.window_p50_ms],
            "floor_ms": None if self.floor_ms is None else round(self.floor_ms, 3),
            "ratio_to_floor": None if self.ratio_to_floor is None else round(self.ratio_to_floor, 3),
            "load_rss_mb": mb(self.load_rss_mb),
            "load_peak_rss_mb": mb(self.load_peak_rss_mb),
            "run_peak_rss_mb": mb(self.run_peak_rss_mb),
            **({"cuda_phases_ms": self.cuda_phases_ms} if self.cuda_phases_ms else {}),
        }


@dataclass
class BenchmarkResult:
    rows: list[BenchmarkRow] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    measurements: list[dict] = field(default_factory=list)  # per batch: warm-up done, windows, stability

    def to_dict(self) -> dict:
        return {"settings": self.settings, "measurements": self.measurements, "rows": [r.to_dict() for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        dicts = []
        for r in self.rows:  # flat columns: the verdict's parts kept, per-window medians as "a;b;c"
            row = r.to_dict()
            speed = row.pop("speed_vs_first") or {}
            row["vs_first_noise_pct"], row["vs_first_verdict"] = speed.get("noise_pct"), speed.get("verdict")
            row["window_p50_ms"] = ";".join(str(v) for v in row["window_p50_ms"])
            dicts.append({k: v for k, v in row.items() if not isinstance(v, dict)})
        if dicts:
            writer = csv.DictWriter(buf, fieldnames=list(dicts[0]))
            writer.writeheader()
            writer.writerows(dicts)
        return buf.getvalue()

    def notes(self) -> list[str]:
        """What a reader must know to trust the table: stability, variance warnings, what memory means."""
        lines = []
        for m in self.measurements:
            st = m["stability"]
            warm = m["warmup"]
            head = f"batch {m['batch']}: warm-up {warm['rounds']} rounds / {warm['seconds']:.2f} s"
            if st["status"] == "off":
                lines.append(f"{head}; one window (no --stability target)")
            elif st["reached"]:
                lines.append(
                    f"{head}; stable: last two window medians within {st['target_pct']:g}% "
                    f"after {st['windows']} windows (spread {m['last_spread_pct']:.1f}%)"
                )
            else:
                lines.append(
                    f"{head}; UNSTABLE: last two window medians {m['last_spread_pct']:.1f}% apart after "
                    f"{st['windows']} windows (target {st['target_pct']:g}%): treat these figures as rough"
                )
        hint = "more --iters per window" if self.settings.get("stability_pct") else "use --stability or more --iters"
        for r in self.rows:
            if r.variance_warning:
                lines.append(
                    f"warning: {r.artifact} batch {r.batch}: p99 is {r.p99_over_p50:.1f}x p50 "
                    f"(warns above {VARIANCE_P99_OVER_P50}x): latency varies here; {hint}"
                )
        lines += self._floor_notes()
        if any(r.load_rss_mb is not None for r in self.rows):
            lines.append(MEMORY_NOTE)
        return lines

    def _floor_notes(self) -> list[str]:
        floor = self.settings.get("floor")
        if not floor:
            return []
        lines, no_model = [], floor.get("no_model", [])  # ONNX without an acmix-deploy manifest: generic
        for batch, gflops in floor["gflops_by_batch"].items():
            cells = [
                f"{r.artifact} {r.ratio_to_floor:.2f}x its {r.floor_ms:.1f} ms"
                if r.floor_ms is not None
                else f"{r.artifact}: {'no model to count' if r.artifact in no_model else 'not on this CPU'}"
                for r in self.rows
                if r.batch == int(batch)
            ]
            lines.append(
                f"batch {batch} floor (fp32 GEMM probe at {gflops:.0f} GFLOP/s, same rounds): " + "; ".join(cells)
            )
        return lines

    def table(self) -> str:
        w = min(60, max([len("artifact"), *(len(r.artifact) for r in self.rows)]))
        head = (
            f"{'artifact':<{w}} {'batch':>5} {'min ms':>8} {'mean ms':>8} {'p50 ms':>8} {'p90 ms':>8} "
            f"{'p99 ms':>8} {'img/s':>8}  {'vs first':<13} {'load MB':>8} {'peak MB':>8}"
        )
        lines = [head]
        seen: set[int] = set()

        def mb(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        for r in self.rows:
            first = r.batch not in seen
            seen.add(r.batch)
            s = r.stats
            lines.append(
                f"{r.artifact[:w]:<{w}} {r.batch:>5} {s.min:>8.2f} {s.mean:>8.2f} {s.p50:>8.2f} {s.p90:>8.2f} "
                f"{s.p99:>8.2f} {r.throughput:>8.1f}  {r.vs_first(first):<13} {mb(r.load_rss_mb):>8} "
                f"{mb(r.run_peak_rss_mb):>8}"
            )
        return "\n".join([*lines, "", *self.notes()])


def _peak_rss_mb() -> float:
    """The process's lifetime peak resident memory (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _prime_backends(runners: Sequence, seed: int) -> None:
    """Load, run once and close the first runner of each backend, unmeasured: the one-off costs.

    Importing a runtime and its first session (ONNX Runtime's environment and thread pools: ~20 MiB
    here on top of its ~40 MiB import) are paid once per process; without this they would land on
    whichever artifact of that backend is loaded first, and two copies of one model would differ.
    """
    seen: set[str] = set()
    for runner in runners:
        if runner.backend in seen:
            continue
        seen.add(runner.backend)
        runner.activate()
        size = runner.manifest.img_size
        runner.infer(np.random.default_rng(seed).standard_normal((1, 3, size, size), dtype=np.float32))
        runner.close()


def _load_each(runners: Sequence, probe: MemoryProbe) -> tuple[int, list[tuple[float | None, float | None]]]:
    """Load every runner, measuring the memory each load kept and peaked at; returns (size, memory).

    A runner already loaded (``side_by_side.open_runners`` loads the one that sizes checkpoints) is
    closed first, so its row measures a load too (a closed runner keeps its manifest)."""
    for runner in runners:
        runner.close()
    memory = [probe.measure(runner.activate) for runner in runners]
    sizes = {r.manifest.img_size for r in runners}
    if len(sizes) != 1:
        raise BenchmarkError(f"artifacts disagree on the input size: {sorted(sizes)}")
    return sizes.pop(), memory


def benchmark(
    runners: Sequence,
    *,
    batches: Sequence[int] = (1,),
    warmup: int = 3,
    iterations: int | None = 20,
    seconds: float | None = None,
    seed: int = 0,
    warmup_s: float = DEFAULT_WARMUP_S,
    stability: float | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    progress: Progress | None = None,
    prime: bool = True,
    floor: bool = False,
    floor_threads: int = 0,
) -> BenchmarkResult:
    """Time ``runner.infer`` per batch size, interleaving the runners round by round.

    Args:
        warmup / warmup_s: untimed rounds per batch size: at least ``warmup`` rounds and ``warmup_s`` seconds.
        iterations / seconds: one measurement window is ``iterations`` rounds, or ``seconds`` of them
            (``seconds`` wins when both are given).
        stability: percent; repeat windows until every artifact's last two window medians agree within
            it, at most ``max_windows`` windows, else the batch is reported unstable. ``None``: one window.
        progress: ``progress(stage, message)`` after the warm-up and each window (the CLI prints to stderr).
        prime: before measuring loads, load, run and close the first artifact of each backend once, so
            the backend's one-off memory is no artifact's row (costs one extra load per backend).
        floor / floor_threads: also time this machine's fp32 GEMM probe (:mod:`.floor`, an ONNX Runtime
            session with ``floor_threads`` intra-op threads, 0: its default) in the same rounds, and give
            each CPU artifact its floor (its model's MACs at the probe's rate) and its ratio to it. The
            probe is one more candidate of the rounds: a stability target covers it too.
    """
    result = BenchmarkResult(
        settings={
            "batches": list(batches),
            "warmup": warmup,
            "warmup_s": warmup_s,
            "iterations": iterations,
            "seconds": seconds,
            "stability_pct": stability,
            "max_windows": max_windows if stability is not None else 1,
            "variance_warning_p99_over_p50": VARIANCE_P99_OVER_P50,
            "cpu_count": os.cpu_count(),
            "interleaved": True,
        }
    )
    gemm = None
    if floor:
        from .floor import GEMM_N, floor_ms, gemm_probe, probe_gflops

        gemm = gemm_probe(floor_threads)
        result.settings["floor"] = {"probe": f"{GEMM_N}^3 fp32 MatMul, ONNX Runtime", "threads": floor_threads,
                                    "gflops_by_batch": {}}  # fmt: skip
    probe = MemoryProbe(len(runners) + (gemm is not None))  # the GEMM probe is the last candidate
    if prime and probe.available:
        _prime_backends(runners, seed)
    size, memory = _load_each(runners, probe)
    macs: list[int | None] = [None] * len(runners)
    if gemm is not None:
        macs, result.settings["floor"]["no_model"] = _floor_macs(runners)
    result.settings["memory_method"] = probe.method
    result.settings["memory_primed"] = bool(prime and probe.available)
    for batch in batches:
        x = np.random.default_rng(seed + batch).standard_normal((batch, 3, size, size), dtype=np.float32)
        calls = [lambda r=runner, x=x: r.infer(x) for runner in runners] + ([gemm] if gemm is not None else [])
        probe.reset_peaks()
        if probe.available:  # pages others freed (a torch load's temporaries) would hide a first call's buffers
            release_free_memory()
        started = time.perf_counter()

        def on_window(k: int, medians: list[float], batch=batch, started=started) -> None:
            if progress is not None:
                cells = " | ".join(f"{m:.2f}" for m in medians[: len(runners)])
                if gemm is not None:  # the floor's probe is the last candidate
                    cells += f" (GEMM probe {medians[-1]:.2f})"
                of = f"/{max_windows}" if stability is not None else ""
                took = time.perf_counter() - started
                progress("benchmark", f"batch {batch} window {k}{of}: p50 {cells} ms ({took:.1f} s)")

        if progress is not None:
            progress("benchmark", f"batch {batch}: warming up ({warmup_s:g} s, at least {warmup} rounds)")
        timing = time_windows(
            calls,
            rounds=iterations,
            seconds=seconds,
            warmup_rounds=warmup,
            warmup_s=warmup_s,
            stability_pct=stability,
            max_windows=max_windows,
            hook=probe if probe.available else None,
            on_window=on_window,
        )
        medians = timing.window_medians
        last_spread = max((relative_spread(m[-2:]) for m in medians), default=0.0)
        result.measurements.append(
            {
                "batch": batch,
                "warmup": {"rounds": timing.warmup.rounds, "seconds": round(timing.warmup.seconds, 3)},
                "stability": timing.stability_dict(),
                "last_spread_pct": round(100.0 * last_spread, 2),
                "rounds_per_window": [len(w[0]) for w in timing.window_samples],
            }
        )
        stats = [summarize(s) for s in timing.samples]
        floors: list[float | None] = [None] * len(runners)
        if gemm is not None:  # the probe is the last candidate
            gflops = probe_gflops(stats[-1].p50)
            result.settings["floor"]["gflops_by_batch"][str(batch)] = round(gflops, 1)
            floors = [None if m is None else floor_ms(m, batch, gflops) for m in macs]
        phases = [_cuda_phases(runner, x, rounds=min(stats[0].n, 20)) for runner in runners]
        for i, runner in enumerate(runners):
            speed = compare_speed(timing.samples[0], timing.samples[i], window_medians=(medians[0], medians[i]))
            result.rows.append(
                BenchmarkRow(
                    artifact=runner.describe(),
                    backend=runner.backend,
                    batch=batch,
                    stats=stats[i],
                    throughput=batch / (stats[i].p50 / 1000.0),
                    speedup_vs_first=stats[0].p50 / stats[i].p50,
                    load_rss_mb=memory[i][0],
                    load_peak_rss_mb=memory[i][1],
                    run_peak_rss_mb=probe.peaks[i],
                    cuda_phases_ms=phases[i],
                    speed=speed,
                    window_p50_ms=medians[i],
                    floor_ms=floors[i],
                )
            )
    result.settings["process_peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def _floor_macs(runners: Sequence) -> tuple[list[int | None], list[str]]:
    """Each runner's model MACs an image where it runs on this CPU (the probe's floor means nothing on a
    GPU) and its manifest names a model family; and the runners that name none (an ONNX without an
    acmix-deploy manifest is ``generic``: no model to count, so no floor, rather than no benchmark)."""
    from ..families import family_names
    from .floor import manifest_macs

    known = set(family_names())
    named = [r.manifest.family in known for r in runners]

    def on_cpu(runner) -> bool:
        device = getattr(runner, "device", "cpu")
        return runner.backend != "tensorrt" and getattr(device, "type", device) == "cpu"

    macs = [manifest_macs(r.manifest) if ok and on_cpu(r) else None for r, ok in zip(runners, named, strict=True)]
    return macs, [r.describe() for r, ok in zip(runners, named, strict=True) if not ok]


def _cuda_phases(runner, x: np.ndarray, rounds: int) -> dict | None:
    """Median CUDA-event split of one inference, for runners that expose ``infer_phases`` on a GPU."""
    infer_phases = getattr(runner, "infer_phases", None)
    device = getattr(runner, "device", None)
    if infer_phases is None or getattr(device, "type", None) != "cuda":
        return None
    samples = [infer_phases(x)[1] for _ in range(max(rounds, 1))]
    return {key: round(statistics.median(s[key] for s in samples), 4) for key in samples[0]}
