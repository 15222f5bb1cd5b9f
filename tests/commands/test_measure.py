"""acmix-deploy benchmark and profile (acmix_deploy/commands/measure.py), through the real console entry point."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import assert_one_line_error, inproc, run_cli


def test_profile_of_an_engine_reaches_the_tensorrt_profiler(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed: the GPU suite profiles real engines")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"a plan")
    proc = inproc("profile", str(engine), "--iters", "1")
    assert_one_line_error(proc, 1, "TensorRT is not installed")
    assert "arrive" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "{onnx}", "{ckpt}", "--iters", "1", "--warmup", "0", "--warmup-s", "0", "--json"],
        ["benchmark", "{onnx}", "{fp16}", "--iters", "1", "--warmup", "0", "--warmup-s", "0", "--json"],
        ["evaluate", "{onnx}", "{fp16}", "--data", "{data}", "--top-k", "1"],
        ["evaluate", "{fp16}", "--data", "{data}", "--top-k", "1"],
    ],
    ids=["benchmark-checkpoint", "benchmark", "evaluate", "evaluate-one"],
)
def test_side_by_side_commands_read_each_manifest_only_as_its_runner_loads(cli_env, monkeypatch, argv):
    """benchmark and evaluate read an ONNX's metadata only inside its runner's load: the checkpoints' input size,
    the shared class names and the precision column come from the manifests the runners read (before, each was
    read again ahead of or after its runner: shared_img_size, shared_class_names, recorded_precision)."""
    from acmix_deploy.manifest import reader
    from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

    reads: list[str] = []
    loads: list[str] = []
    real_read, real_load = reader.read_onnx_metadata, OnnxRuntimeRunner._load

    def counted_read(path):
        reads.append(str(path))
        return real_read(path)

    def counted_load(self):
        loads.append(str(self.path))
        return real_load(self)

    monkeypatch.setattr(reader, "read_onnx_metadata", counted_read)
    monkeypatch.setattr(OnnxRuntimeRunner, "_load", counted_load)
    proc = inproc(*(a.format(**cli_env) for a in argv))
    assert proc.returncode == 0, proc.stderr
    assert loads and sorted(reads) == sorted(loads), (reads, loads)


def test_benchmark_stability_json_is_clean_and_progress_goes_to_stderr(small_artifacts):
    onnx_path = str(small_artifacts["onnx"])
    proc = run_cli(
        "benchmark", onnx_path, onnx_path, "--iters", "3", "--warmup-s", "0.05",
        "--stability", "0.01", "--max-windows", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout is the report only
    measured = report["measurements"][0]
    assert measured["warmup"]["seconds"] >= 0.05 and measured["warmup"]["rounds"] >= 1
    assert measured["stability"]["target_pct"] == 0.01 and measured["stability"]["windows"] == 2
    assert measured["stability"]["status"] in {"stable", "unstable"}
    assert all(len(row["window_p50_ms"]) == 2 for row in report["rows"])
    assert "window 2/2" in proc.stderr and "warming up" in proc.stderr
    proc = run_cli("benchmark", onnx_path, "--iters", "2", "--stability", "0.01", "--max-windows", "2")
    assert proc.returncode == 0 and "batch 1: warm-up" in proc.stdout and "min ms" in proc.stdout, proc.stderr
    assert_one_line_error(run_cli("benchmark", onnx_path, "--stability", "nan"), 2, "--stability")
    assert_one_line_error(run_cli("benchmark", onnx_path, "--max-windows", "1"), 2, "--max-windows")


def test_benchmark_floor_reports_each_cpu_artifacts_ratio_to_the_gemm_floor(small_artifacts):
    proc = run_cli("benchmark", str(small_artifacts["onnx"]), "--iters", "2", "--threads", "1", "--floor")
    assert proc.returncode == 0, proc.stderr
    assert "batch 1 floor (fp32 GEMM probe at" in proc.stdout and "x its" in proc.stdout
    assert "(GEMM probe " in proc.stderr  # the progress line labels the probe's median, not as an artifact's
    report = json.loads(run_cli("benchmark", str(small_artifacts["onnx"]), "--iters", "2", "--floor", "--json").stdout)
    assert report["settings"]["floor"]["gflops_by_batch"]["1"] > 0 and report["rows"][0]["ratio_to_floor"] > 0
