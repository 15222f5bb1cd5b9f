"""``acmix-deploy benchmark``: latency and throughput of one or more artifacts, side by side.

For each batch size, every runner is called in turn (interleaved rounds), so machine drift hits
all alike; ratios are against the first artifact. On CUDA, host<->device copies are part of each
backend's ``infer`` (end-to-end latency, as an application sees it).

Memory is measured per artifact, not per process: each row's ``load_rss_mb`` is the resident memory
that loading that artifact and running its first inference at the largest batch added to the
process (current RSS after minus before, from ``/proc/self/statm``; ``None`` where that is not
available). The process's lifetime peak, which no single artifact owns, is reported once in the
settings (``process_peak_rss_mb``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AcmixDeployError
from ..timing import LatencyStats, summarize


class BenchmarkError(AcmixDeployError, ValueError):
    """The artifacts cannot be benchmarked together (they disagree on the input size)."""


@dataclass
class BenchmarkRow:
    artifact: str
    backend: str
    batch: int
    stats: LatencyStats
    throughput: float  # images per second at the median latency
    ratio_vs_first: float  # median latency of the first artifact / this one (>1: faster)
    load_rss_mb: float | None  # resident memory this artifact's loading and first largest-batch run added
    cuda_phases_ms: dict | None = None  # median h2d / compute / d2h from CUDA events, when the backend has them

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "batch": self.batch,
            **{f"{k}_ms": round(v, 3) for k, v in self.stats.to_dict().items() if k != "n"},
            "iterations": self.stats.n,
            "throughput_ips": round(self.throughput, 2),
            "speedup_vs_first": round(self.ratio_vs_first, 3),
            "load_rss_mb": None if self.load_rss_mb is None else round(self.load_rss_mb, 1),
            **({"cuda_phases_ms": self.cuda_phases_ms} if self.cuda_phases_ms else {}),
        }


@dataclass
class BenchmarkResult:
    rows: list[BenchmarkRow] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"settings": self.settings, "rows": [r.to_dict() for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        dicts = [r.to_dict() for r in self.rows]
        if dicts:
            writer = csv.DictWriter(buf, fieldnames=list(dicts[0]))
            writer.writeheader()
            writer.writerows(dicts)
        return buf.getvalue()

    def table(self) -> str:
        w = min(60, max([len("artifact"), *(len(r.artifact) for r in self.rows)]))
        head = f"{'artifact':<{w}} {'batch':>5} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'img/s':>8} {'vs first':>9}"
        lines = [head]
        for r in self.rows:
            lines.append(
                f"{r.artifact[:w]:<{w}} {r.batch:>5} {r.stats.p50:>9.2f} {r.stats.p90:>9.2f} {r.stats.p99:>9.2f} "
                f"{r.throughput:>8.1f} {r.ratio_vs_first:>8.2f}x"
            )
        return "\n".join(lines)


def _peak_rss_mb() -> float:
    """The process's lifetime peak resident memory (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float | None:
    """The process's resident memory now (Linux ``/proc/self/statm``); ``None`` where it cannot be read."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _growth(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _load_each(runners: Sequence, batch: int, seed: int) -> tuple[int, list[float | None]]:
    """Load every runner and run it once at ``batch``, measuring the memory each adds; returns (size, growth)."""
    growth = []
    for runner in runners:
        before = current_rss_mb()
        runner.activate()
        growth.append(_growth(before, current_rss_mb()))
    sizes = {r.manifest.img_size for r in runners}
    if len(sizes) != 1:
        raise BenchmarkError(f"artifacts disagree on the input size: {sorted(sizes)}")
    size = sizes.pop()
    x = np.random.default_rng(seed + batch).standard_normal((batch, 3, size, size), dtype=np.float32)
    for i, runner in enumerate(runners):  # the first run allocates the runtime's buffers: part of its cost
        before = current_rss_mb()
        runner.infer(x)
        more = _growth(before, current_rss_mb())
        growth[i] = None if growth[i] is None or more is None else growth[i] + more
    return size, growth


def benchmark(
    runners: Sequence,
    *,
    batches: Sequence[int] = (1,),
    warmup: int = 3,
    iterations: int | None = 20,
    seconds: float | None = None,
    seed: int = 0,
) -> BenchmarkResult:
    """Time ``runner.infer`` per batch size, interleaving the runners round by round.

    Stops after ``iterations`` rounds, or when ``seconds`` have passed (whichever is given;
    ``seconds`` wins when both are).
    """
    result = BenchmarkResult(
        settings={
            "batches": list(batches),
            "warmup": warmup,
            "iterations": iterations,
            "seconds": seconds,
            "cpu_count": os.cpu_count(),
            "interleaved": True,
        }
    )
    size, memory = _load_each(runners, max(batches), seed)
    for batch in batches:
        x = np.random.default_rng(seed + batch).standard_normal((batch, 3, size, size), dtype=np.float32)
        for _ in range(warmup):
            for runner in runners:
                runner.infer(x)
        samples: list[list[float]] = [[] for _ in runners]
        start = time.perf_counter()
        rounds = 0
        while True:
            for i, runner in enumerate(runners):
                t0 = time.perf_counter()
                runner.infer(x)
                samples[i].append(time.perf_counter() - t0)
            rounds += 1
            if seconds is not None:
                if time.perf_counter() - start >= seconds:
                    break
            elif rounds >= (iterations or 20):
                break
        stats = [summarize(s) for s in samples]
        phases = [_cuda_phases(runner, x, rounds=min(rounds, 20)) for runner in runners]
        for runner, st, phase, grown in zip(runners, stats, phases, memory, strict=True):
            result.rows.append(
                BenchmarkRow(
                    artifact=runner.describe(),
                    backend=runner.backend,
                    batch=batch,
                    stats=st,
                    throughput=batch / (st.p50 / 1000.0),
                    ratio_vs_first=stats[0].p50 / st.p50,
                    load_rss_mb=grown,
                    cuda_phases_ms=phase,
                )
            )
    result.settings["process_peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def _cuda_phases(runner, x: np.ndarray, rounds: int) -> dict | None:
    """Median CUDA-event split of one inference, for runners that expose ``infer_phases`` on a GPU."""
    infer_phases = getattr(runner, "infer_phases", None)
    device = getattr(runner, "device", None)
    if infer_phases is None or getattr(device, "type", None) != "cuda":
        return None
    samples = [infer_phases(x)[1] for _ in range(max(rounds, 1))]
    return {key: round(statistics.median(s[key] for s in samples), 4) for key in samples[0]}


def plot(result: BenchmarkResult, path: str | Path) -> Path:
    """PNG with latency (p50) and throughput against batch size, one line per artifact (PIL only)."""
    from PIL import Image, ImageDraw

    artifacts = list(dict.fromkeys(r.artifact for r in result.rows))
    batches = sorted({r.batch for r in result.rows})
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    width, height, margin = 1000, 440, 60
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    panels = [("p50 latency (ms)", lambda r: r.stats.p50), ("throughput (images/s)", lambda r: r.throughput)]
    panel_w = (width - 3 * margin) // 2
    for p, (title, value) in enumerate(panels):
        x0, y0 = margin + p * (panel_w + margin), margin
        x1, y1 = x0 + panel_w, height - margin
        draw.rectangle([x0, y0, x1, y1], outline="black")
        draw.text((x0, y0 - 20), title, fill="black")
        vmax = max(value(r) for r in result.rows) * 1.1 or 1.0
        draw.text((x0 - 55, y0), f"{vmax:.0f}", fill="black")
        draw.text((x0 - 20, y1 - 10), "0", fill="black")

        def px(i: int, v: float, x0=x0, x1=x1, y0=y0, y1=y1, vmax=vmax) -> tuple[float, float]:
            fx = 0.5 if len(batches) == 1 else i / (len(batches) - 1)
            return x0 + 10 + fx * (x1 - x0 - 20), y1 - (v / vmax) * (y1 - y0)

        for i, b in enumerate(batches):
            bx, _ = px(i, 0)
            draw.text((bx - 5, y1 + 5), str(b), fill="black")
        draw.text(((x0 + x1) / 2 - 20, y1 + 22), "batch size", fill="black")
        for a, name in enumerate(artifacts):
            pts = [px(batches.index(r.batch), value(r)) for r in result.rows if r.artifact == name]
            color = colors[a % len(colors)]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
    for a, name in enumerate(artifacts):
        draw.text((margin + a * 240, 15), f"- {name[:34]}", fill=colors[a % len(colors)])
    path = Path(path)
    img.save(path)
    return path


@dataclass
class ConcurrencyResult:
    artifact: str
    threads: int
    requests: int
    unbatched_ips: float
    batched_ips: float
    batches_run: int
    identical: bool

    @property
    def ratio(self) -> float:
        return self.batched_ips / self.unbatched_ips

    def to_dict(self) -> dict:
        return {**self.__dict__, "ratio": round(self.ratio, 3)}

    def describe(self) -> str:
        return (
            f"{self.artifact}: {self.threads} threads x {self.requests // self.threads} requests (batch 1): "
            f"unbatched {self.unbatched_ips:.1f} img/s, micro-batched {self.batched_ips:.1f} img/s "
            f"({self.ratio:.2f}x, {self.batches_run} batches), results identical: {self.identical}"
        )


def concurrency_benchmark(
    predictor,
    *,
    threads: int = 8,
    requests_per_thread: int = 20,
    max_delay_ms: float = 2.0,
    workers: int = 2,
    seed: int = 0,
) -> ConcurrencyResult:
    """Many threads sending single images: plain Predictor vs BatchingPredictor, same inputs."""
    import threading

    from ..batching import BatchingPredictor

    size = predictor.manifest.img_size
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((1, 3, size, size), dtype=np.float32) for _ in range(16)]
    expected = [predictor.infer(x) for x in inputs]

    def drive(infer) -> tuple[float, bool]:
        same = [True]

        def worker(offset: int) -> None:
            for k in range(requests_per_thread):
                i = (offset + k) % len(inputs)
                if not np.array_equal(infer(inputs[i]), expected[i]):
                    same[0] = False

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return threads * requests_per_thread / (time.perf_counter() - t0), same[0]

    unbatched, same_a = drive(predictor.infer)
    with BatchingPredictor(predictor, max_delay_ms=max_delay_ms, workers=workers) as batcher:
        batched, same_b = drive(batcher.infer)
        batches = batcher.batches_run
    return ConcurrencyResult(
        artifact=predictor.runner.describe(),
        threads=threads,
        requests=threads * requests_per_thread,
        unbatched_ips=unbatched,
        batched_ips=batched,
        batches_run=batches,
        identical=same_a and same_b,
    )
