"""In-process micro-batching: concurrent callers' requests gathered into batches, no server needed.

A worker thread takes the first waiting request, keeps collecting for at most ``max_delay_ms``
(or until ``max_batch_size`` rows are waiting), runs one batch through the runner, and hands each
caller its own rows. Throughput rises because one batch of 8 costs far less than 8 batches of 1;
each caller's latency grows by at most the delay.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from .errors import AcmixDeployError
from .predictor import Prediction, Predictor, softmax


class BatchingPredictor:
    """Wrap a :class:`Predictor`; ``infer``/``predict`` may be called from many threads at once."""

    def __init__(
        self, predictor: Predictor, max_batch_size: int | None = None, max_delay_ms: float = 2.0, workers: int = 1
    ) -> None:
        limit = predictor.runner.batch_limits[1]
        self.predictor = predictor
        self.max_batch_size = min(max_batch_size or limit, limit)
        if self.max_batch_size < 1 or max_delay_ms < 0 or workers < 1:
            raise AcmixDeployError("max_batch_size and workers must be >= 1 and max_delay_ms >= 0")
        self.max_delay = max_delay_ms / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self.batches_run = 0
        self._count_lock = threading.Lock()
        # Several workers keep a CPU busy while one batch runs (ONNX Runtime runs concurrent calls in parallel).
        self._workers = [
            threading.Thread(target=self._loop, name=f"acmix-batcher-{i}", daemon=True) for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def infer(self, array: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed (N, 3, H, W) batch, computed together with other callers' rows."""
        if self._closed.is_set():
            raise AcmixDeployError("BatchingPredictor is closed")
        future: Future = Future()
        self._queue.put((np.ascontiguousarray(array, dtype=np.float32), future))
        return future.result()

    def predict(self, images, top_k: int = 5) -> list[list[Prediction]]:
        x = self.predictor.preprocess(images)
        return self.predictor._top_k(softmax(self.infer(x)), top_k)

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            pending = [first]
            rows = len(first[0])
            deadline = time.perf_counter() + self.max_delay
            while rows < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                pending.append(item)
                rows += len(item[0])
            self._run(pending)

    def _run(self, pending: list[tuple[np.ndarray, Future]]) -> None:
        try:
            logits = self.predictor.infer(np.concatenate([x for x, _ in pending]))
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the failure
            for _, future in pending:
                future.set_exception(exc)
            return
        with self._count_lock:
            self.batches_run += 1
        start = 0
        for x, future in pending:
            future.set_result(logits[start : start + len(x)])
            start += len(x)

    def close(self) -> None:
        self._closed.set()
        for worker in self._workers:
            worker.join(timeout=5)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.set_exception(AcmixDeployError("BatchingPredictor closed"))

    def __enter__(self) -> BatchingPredictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
