from __future__ import annotations

import json

import pytest

from acmix_deploy.manifest import read_sidecar
from acmix_deploy.profiling import summarize, time_interleaved
from acmix_deploy.profiling.benchmark import benchmark, plot
from acmix_deploy.profiling.layers import block_names, profile_onnx
from acmix_deploy.runtimes import open_runner


def test_summary_statistics():
    stats = summarize([0.001, 0.002, 0.003, 0.004])
    assert stats.n == 4 and stats.min == pytest.approx(1.0) and stats.max == pytest.approx(4.0)
    assert stats.p50 == pytest.approx(2.5) and stats.mean == pytest.approx(2.5)
    calls = []
    result = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    # warm-up round, then the order rotates each round so neither always runs first
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and result["a"].n == 3


def test_benchmark_two_backends_side_by_side(small_artifacts, tmp_path):
    runners = [open_runner(small_artifacts["onnx"]), open_runner(small_artifacts["checkpoint"], img_size=64)]
    result = benchmark(runners, batches=[1, 3], warmup=1, iterations=3)
    assert [(r.backend, r.batch) for r in result.rows] == [
        ("onnxruntime", 1),
        ("torch", 1),
        ("onnxruntime", 3),
        ("torch", 3),
    ]
    first_at = {}
    for row in result.rows:  # each row against the first artifact at the same batch
        first = first_at.setdefault(row.batch, row)
        assert row.speedup_vs_first == pytest.approx(first.stats.p50 / row.stats.p50) and row.stats.n == 3
        assert row.throughput == pytest.approx(row.batch / (row.stats.p50 / 1000.0))
    torch_row = json.loads(result.to_json())["rows"][1]
    assert torch_row["speedup_vs_first"] == round(result.rows[0].stats.p50 / result.rows[1].stats.p50, 3)
    assert json.loads(result.to_json())["rows"][1]["batch"] == 1
    assert result.to_csv().splitlines()[0].startswith("artifact,backend,batch,min_ms")
    png = plot(result, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as img:  # gridlines: light grey pixels inside the panels, not only black and colours
        assert (225, 225, 225) in {c for _, c in img.convert("RGB").getcolors(1 << 16)}
    data = result.to_dict()
    assert [m["batch"] for m in data["measurements"]] == [1, 3]
    assert data["measurements"][0]["warmup"]["rounds"] >= 1 and data["measurements"][0]["stability"]["status"] == "off"
    row = data["rows"][1]
    assert {"min_ms", "mean_ms", "p99_over_p50", "variance_warning", "window_p50_ms", "run_peak_rss_mb"} <= set(row)
    assert row["speed_vs_first"]["verdict"] in {"faster", "slower", "within noise", "unknown"}
    assert "min ms" in result.table() and "mean ms" in result.table()
    header = result.to_csv().splitlines()[0].split(",")
    assert {"vs_first_verdict", "vs_first_noise_pct", "window_p50_ms", "run_peak_rss_mb"} <= set(header)


def test_layer_profile_folds_onto_acmix_blocks(small_artifacts):
    manifest = read_sidecar(small_artifacts["onnx"])
    assert block_names(manifest) == [
        "layer1.0",
        "layer2.0",
        "layer2.1",
        "layer3.0",
        "layer3.1",
        "layer3.2",
        "layer3.3",
        "layer4.0",
    ]
    prof = profile_onnx(small_artifacts["onnx"], manifest, iterations=2)
    assert {"attention", "convolution", "projection"} <= set(prof.branches)
    assert set(prof.blocks) >= {"stem/head", "layer1.0", "layer4.0"}
    assert prof.total_ms == pytest.approx(sum(prof.branches.values()))
    assert prof.top_nodes[0]["ms"] >= prof.top_nodes[-1]["ms"]
    assert "layer2.0" in prof.table()
    # the profiler's overhead is measured and said on screen, next to the unprofiled latency
    assert prof.unprofiled_p50_ms > 0 and prof.profiled_run_ms > 0 and prof.kernels_per_run >= len(prof.top_nodes)
    assert "unprofiled, this model runs" in prof.table() and prof.to_dict()["unprofiled_p50_ms"] > 0
    # --top 0 lists every kernel, --top 3 three
    assert f"all {len(prof.top_nodes)} kernels:" in prof.table(0) and "top 3 kernels:" in prof.table(3)
    assert len(prof.table(0).splitlines()) - len(prof.table(3).splitlines()) == len(prof.top_nodes) - 3


def test_fused_kernels_are_placed_by_their_outputs_not_reported_as_layout(tmp_path):
    """ORT fuses Swin's MLP bias Add + Gelu into BiasGelu, a kernel whose name has no scope: it is
    the MLP's, found through its output's name; only data-movement kernels are "layout"."""
    from acmix_deploy.exporters.onnx import export_onnx
    from acmix_deploy.models import build_model
    from acmix_deploy.profiling.layers import DATA_MOVEMENT_OPS
    from tests.conftest import SMALL_SWIN, randomize

    path = tmp_path / "swin.onnx"
    export_onnx(randomize(build_model("acmix_swin_tiny", **SMALL_SWIN), seed=7), path, measure_latency=False)
    prof = profile_onnx(path, read_sidecar(path), iterations=2)
    gelu = [n for n in prof.top_nodes if n["op"] == "BiasGelu"]
    assert gelu and all(not n["name"].startswith("/") for n in gelu)  # ORT's own names, unscoped
    assert {n["branch"] for n in gelu} == {"mlp"}
    assert all(n["block"].startswith("layers.") for n in gelu)
    assert {n["op"] for n in prof.top_nodes if n["branch"] == "layout"} <= DATA_MOVEMENT_OPS


def test_benchmark_floor_gives_an_onnx_without_a_manifest_no_floor_and_still_runs(tmp_path):
    """A generic ONNX (no acmix-deploy manifest) has no model to count: its row has no floor, the run goes on."""
    pytest.importorskip("onnxruntime")
    from tests.reliability.conftest import tiny_classifier

    path = tiny_classifier(tmp_path / "generic.onnx")
    with pytest.warns(UserWarning, match="no acmix-deploy manifest"):
        runner = open_runner(path).activate()
    with runner:
        result = benchmark([runner], batches=[1], warmup=1, iterations=2, floor=True, floor_threads=1)
    assert result.rows[0].floor_ms is None and result.rows[0].to_dict()["ratio_to_floor"] is None
    assert result.settings["floor"]["no_model"] == [runner.describe()]
    (note,) = [line for line in result.notes() if "floor (fp32 GEMM probe" in line]
    assert note.endswith(f"{runner.describe()}: no model to count")


def test_a_runner_loaded_before_the_benchmark_still_gets_its_load_measured(small_artifacts):
    runner = open_runner(small_artifacts["onnx"]).activate()  # as open_runners leaves the sizing one
    result = benchmark([runner], batches=[1], warmup=1, iterations=1, prime=False)
    if result.settings["memory_method"] == "none":
        pytest.skip("no resident-memory measurement on this platform")
    assert result.rows[0].load_rss_mb is not None and result.rows[0].load_rss_mb > 1.0
