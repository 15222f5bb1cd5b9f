"""Micro-batching: concurrent callers get exactly their own results, in fewer, larger batches."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from acmix_deploy import BatchingPredictor, Predictor
from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.profiling.benchmark import concurrency_benchmark


@pytest.mark.parametrize("path_key", ["onnx", "checkpoint"])
def test_8_threads_x_500_requests_match_unbatched(small_artifacts, path_key):
    """ONNX Runtime: bit-identical. torch: its CPU kernels block differently per batch size, so rows of
    a combined batch may differ in the last bits; equal within 1e-5 relative and same top-1."""
    opts = {"img_size": 64} if path_key == "checkpoint" else {}
    predictor = Predictor.load(small_artifacts[path_key], **opts)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1 + i % 2, 3, 64, 64), dtype=np.float32) for i in range(12)]
    expected = [predictor.infer(x) for x in inputs]
    mismatches: list[int] = []
    requests = 500 if path_key == "onnx" else 60  # torch at 64 px is slower; same checks
    with BatchingPredictor(predictor, max_delay_ms=2.0) as batcher:

        def worker(offset: int) -> None:
            for k in range(requests):
                i = (offset + k) % len(inputs)
                out = batcher.infer(inputs[i])
                if path_key == "onnx":
                    same = np.array_equal(out, expected[i])
                else:
                    scale = max(1.0, float(np.abs(expected[i]).max()))
                    same = (
                        np.abs(out - expected[i]).max() <= 1e-5 * scale
                        and (out.argmax(1) == expected[i].argmax(1)).all()
                    )
                if not same:
                    mismatches.append(i)

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert not mismatches
        assert batcher.batches_run < 8 * requests  # requests were actually combined


def test_predict_through_the_batcher_and_close(small_artifacts):
    predictor = Predictor.load(small_artifacts["onnx"])
    batcher = BatchingPredictor(predictor, max_batch_size=4)
    x = np.zeros((70, 60, 3), np.uint8)
    assert batcher.predict([x], top_k=2) == predictor.predict([x], top_k=2)
    batcher.close()
    with pytest.raises(AcmixDeployError, match="closed"):
        batcher.infer(np.zeros((1, 3, 64, 64), np.float32))


def test_concurrency_benchmark_reports_a_ratio(small_artifacts):
    result = concurrency_benchmark(Predictor.load(small_artifacts["onnx"]), threads=4, requests_per_thread=10)
    assert result.identical and result.requests == 40 and result.ratio > 0
    assert "micro-batched" in result.describe()
