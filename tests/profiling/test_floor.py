"""The GEMM floor: the probe computes a real 2048³ MatMul, and an artifact's MACs are its model's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from acmix_deploy.profiling import floor


def test_rate_and_floor_arithmetic():
    # 2 * 2048³ FLOP in 100 ms = 171.8 GFLOP/s; 1 GMAC at 100 GFLOP/s = 20 ms an image
    assert floor.probe_gflops(100.0) == pytest.approx(2 * 2048**3 / 0.1 / 1e9)
    assert floor.floor_ms(10**9, 3, 100.0) == pytest.approx(60.0)


def test_gemm_probe_runs_one_fp32_matmul():
    pytest.importorskip("onnxruntime")
    (c,) = floor.gemm_probe(threads=1)()
    assert c.shape == (floor.GEMM_N, floor.GEMM_N) and c.dtype == np.float32 and np.isfinite(c).all()


def test_artifact_macs_are_the_macs_of_the_model_it_was_exported_from(small_artifacts):
    from acmix_deploy.manifest import read_manifest
    from acmix_deploy.models.complexity import count_model_macs

    manifest = read_manifest(small_artifacts["onnx"])
    macs = floor.manifest_macs(manifest)
    assert macs == count_model_macs(small_artifacts["model"], 64) > 0
    # a different input size is a different floor (the manifest's size is the one counted)
    larger = manifest.replace(
        img_size=128, preprocessing=dataclasses.replace(manifest.preprocessing, resize=128, crop=128)
    )
    assert floor.manifest_macs(larger) > macs


def test_swin_macs_follow_the_recorded_input_size():
    from acmix_deploy.families import get_family
    from acmix_deploy.manifest import Manifest, Preprocessing
    from acmix_deploy.models.complexity import count_macs

    family = get_family("acmix_swin")
    hparams = {"embed_dim": 24, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 4, 8], "window_size": 4,
               "num_classes": 10}  # fmt: skip
    manifest = Manifest(family=family.name, hparams=hparams, img_size=64, num_classes=10,
                        preprocessing=Preprocessing(resize=64, crop=64))  # fmt: skip
    assert floor.manifest_macs(manifest) == count_macs("acmix_swin_tiny", 64, **hparams)


def test_benchmark_floor_times_the_probe_in_the_same_rounds(small_artifacts):
    pytest.importorskip("onnxruntime")
    from acmix_deploy.profiling.benchmark import benchmark
    from acmix_deploy.runtimes import open_runner

    runners = [open_runner(small_artifacts["onnx"]), open_runner(small_artifacts["checkpoint"], img_size=64)]
    result = benchmark(runners, batches=[1, 2], warmup=1, iterations=2, floor=True, floor_threads=1)
    gflops = result.settings["floor"]["gflops_by_batch"]
    assert set(gflops) == {"1", "2"} and all(g > 0 for g in gflops.values())
    macs = floor.manifest_macs(runners[0].manifest)
    for row in result.rows:  # both artifacts run on this CPU: both get the same model's floor
        expected = floor.floor_ms(macs, row.batch, gflops[str(row.batch)])
        assert row.floor_ms == pytest.approx(expected, rel=1e-3)
        assert row.ratio_to_floor == pytest.approx(row.stats.p50 / row.floor_ms)
        assert row.to_dict()["ratio_to_floor"] == round(row.ratio_to_floor, 3)
    assert sum("floor (fp32 GEMM probe at" in line for line in result.notes()) == 2
    plain = benchmark(runners[:1], batches=[1], warmup=1, iterations=1)
    assert "floor" not in plain.settings and plain.rows[0].floor_ms is None
    assert not any("floor" in line for line in plain.notes())


def test_gpu_artifacts_get_no_cpu_floor_and_the_table_says_so(small_artifacts):
    """A TensorRT engine or a CUDA session is not measured against this CPU's GEMM rate."""
    from types import SimpleNamespace

    from acmix_deploy.profiling.benchmark import BenchmarkResult, BenchmarkRow, _floor_macs
    from acmix_deploy.runtimes import open_runner
    from acmix_deploy.timing import summarize

    cpu = open_runner(small_artifacts["onnx"])
    manifest = cpu.manifest
    engine = SimpleNamespace(backend="tensorrt", manifest=manifest)
    cuda_session = SimpleNamespace(backend="onnxruntime", device="cuda", manifest=manifest)
    macs, no_model = _floor_macs([cpu, engine, cuda_session])
    assert macs[0] == floor.manifest_macs(manifest) and macs[1:] == [None, None] and no_model == []
    stats = summarize([0.004, 0.005])
    rows = [
        BenchmarkRow("a.onnx", "onnxruntime", 1, stats, 200.0, 1.0, None, floor_ms=2.5),
        BenchmarkRow("a.engine", "tensorrt", 1, stats, 200.0, 1.0, None),
    ]
    result = BenchmarkResult(rows=rows, settings={"floor": {"gflops_by_batch": {"1": 150.0}}})
    (note,) = [line for line in result.notes() if "floor" in line]
    assert "a.onnx 1.80x its 2.5 ms" in note and "a.engine: not on this CPU" in note
    assert "ratio_to_floor" in result.to_csv().splitlines()[0] and rows[1].to_dict()["ratio_to_floor"] is None
