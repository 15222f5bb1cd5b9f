"""``acmix-deploy benchmark --concurrency``: many client threads, plain Predictor vs micro-batching.

Each thread sends single images; the same inputs go through a plain :class:`~acmix_deploy.Predictor`
and a :class:`~acmix_deploy.batching.BatchingPredictor`, and the outputs are checked equal to a
sequential run, so a faster micro-batched figure is never bought with different results.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


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
