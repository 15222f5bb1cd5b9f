"""Benchmark memory is per artifact: what its load kept and its calls peaked at, not the process peak."""

from __future__ import annotations

import numpy as np

from acmix_deploy.profiling.benchmark import benchmark, current_rss_mb
from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

BALLAST_MB = 160


class BallastRunner(OnnxRuntimeRunner):
    """A real ONNX Runtime runner that also keeps a known amount of resident memory once loaded."""

    def _load(self):
        manifest = super()._load()
        self.ballast = np.ones(BALLAST_MB * 2**20 // 8)  # written, so resident
        return manifest

    def _close(self) -> None:
        self.ballast = None
        super()._close()


def test_each_row_reports_the_memory_its_own_artifact_added(small_artifacts):
    if current_rss_mb() is None:
        import pytest

        pytest.skip("no /proc/self/statm here")
    heavy, light = BallastRunner(small_artifacts["onnx"]), OnnxRuntimeRunner(small_artifacts["onnx"])
    try:
        result = benchmark([heavy, light], batches=[1, 2], warmup=0, iterations=1)
    finally:
        heavy.close()
        light.close()
    memory = [r.load_rss_mb for r in result.rows]  # rows: heavy b1, light b1, heavy b2, light b2
    by_runner = [memory[0::2], memory[1::2]]
    heavy_mb, light_mb = by_runner[0][0], by_runner[1][0]
    assert heavy_mb >= 0.8 * BALLAST_MB, by_runner
    assert light_mb < heavy_mb - 0.5 * BALLAST_MB, by_runner  # not the shared process peak
    assert all(len(set(values)) == 1 for values in by_runner)  # a property of the artifact, not of the batch row
    assert result.settings["process_peak_rss_mb"] >= heavy_mb
    assert "load_rss_mb" in result.rows[0].to_dict() and "peak_rss_mb" not in result.rows[0].to_dict()
    assert all(r.load_peak_rss_mb >= r.load_rss_mb - 0.5 for r in result.rows)  # a peak is never below what stays
    assert result.settings["memory_primed"] is True


def test_run_peak_grows_with_the_batch_and_loads_of_one_model_agree(small_artifacts):
    """A batch of 32 needs more activation memory than a batch of 1; two copies of a model cost alike."""
    if current_rss_mb() is None:
        import pytest

        pytest.skip("no /proc/self/status here")
    runners = [OnnxRuntimeRunner(small_artifacts["onnx"]), OnnxRuntimeRunner(small_artifacts["onnx"])]
    try:
        result = benchmark(runners, batches=[1, 32], warmup=1, warmup_s=0.0, iterations=2)
    finally:
        for runner in runners:
            runner.close()
    rows = {(i % 2, r.batch): r for i, r in enumerate(result.rows)}
    for copy in (0, 1):
        assert rows[(copy, 32)].run_peak_rss_mb > rows[(copy, 1)].run_peak_rss_mb + 2.0, result.to_dict()
        assert rows[(copy, 1)].run_peak_rss_mb >= 0.0
    first, second = rows[(0, 1)].load_rss_mb, rows[(1, 1)].load_rss_mb
    assert abs(first - second) <= max(3.0, 0.5 * max(first, second)), (first, second)  # no one-off costs on row 1
