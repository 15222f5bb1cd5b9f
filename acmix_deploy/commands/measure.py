"""Measuring artifacts: ``benchmark`` (latency and throughput side by side), ``profile`` (time per layer)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    BackendOption,
    Force,
    ImgSize,
    JsonFlag,
    NoRewrite,
    SaveJson,
    UsageError,
    at_least,
    check_writable,
    ints,
    require_files,
    show,
    stage_printer,
    within,
)


def benchmark(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts to time side by side (ratios vs the first).")],
    backend: BackendOption = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated: 1,8,32.")] = "1",
    warmup: Annotated[int, typer.Option(help="Untimed rounds per batch size, at least (see --warmup-s).")] = 1,
    warmup_s: Annotated[float, typer.Option("--warmup-s", help="Untimed warm-up per batch size, seconds.")] = 0.2,
    iters: Annotated[int, typer.Option(help="Timed rounds per batch size (per window with --stability).")] = 20,
    seconds: Annotated[float | None, typer.Option(help="Time per batch size (per window) instead of --iters.")] = None,
    stability: Annotated[
        float | None,
        typer.Option(help="Repeat windows until consecutive window medians agree within PCT percent (off)."),
    ] = None,
    max_windows: Annotated[int, typer.Option(help="Windows at most with --stability, then 'unstable'.")] = 10,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads (0: default).")] = 0,
    no_rewrite: NoRewrite = False,
    img_size: ImgSize = None,
    json_out: JsonFlag = False,
    save_json: SaveJson = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write results as CSV.")] = None,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot.")] = None,
    concurrency: Annotated[int, typer.Option(help="Also run N client threads: plain vs micro-batched (0: off).")] = 0,
    requests: Annotated[int, typer.Option(help="Requests per client thread with --concurrency.")] = 20,
    floor: Annotated[
        bool, typer.Option("--floor", help="Also time a 2048^3 fp32 GEMM, same rounds: each CPU artifact's floor.")
    ] = False,
    force: Force = False,
) -> None:
    """Latency percentiles and throughput per batch size, artifacts interleaved round by round."""
    from acmix_deploy import Predictor
    from acmix_deploy.profiling import benchmark as bench
    from acmix_deploy.side_by_side import open_runners

    batches = ints(batch, "--batch")
    at_least(0, warmup=warmup, threads=threads, concurrency=concurrency)
    at_least(1, iters=iters, requests=requests)
    at_least(2, max_windows=max_windows)
    within(0.001, 3600.0, seconds=seconds)  # NaN passed "<= 0" and never ended
    within(0.0, 600.0, warmup_s=warmup_s)
    within(0.01, 1000.0, stability=stability)
    check_writable([save_json, csv_file, plot_file], force)
    require_files(artifacts)
    # Not loaded yet, but for the one whose manifest sizes the checkpoints: it is the first of its backend,
    # which the benchmark loads, runs and closes unmeasured before it measures every load.
    runners = open_runners(artifacts, backend, threads=threads, rewrite=not no_rewrite, img_size=img_size)
    with ExitStack() as stack:  # the benchmark loads each runner (it measures that); all are closed whatever happens
        for runner in runners:
            stack.callback(runner.close)
        result = bench.benchmark(
            runners,
            batches=batches,
            warmup=warmup,
            warmup_s=warmup_s,
            iterations=iters,
            seconds=seconds,
            stability=stability,
            max_windows=max_windows,
            progress=stage_printer(True),  # stderr: stdout holds the table or the --json report only
            floor=floor,
            floor_threads=threads,
        )
        concurrent = [
            bench.concurrency_benchmark(Predictor(r), threads=concurrency, requests_per_thread=requests)
            for r in runners
            if concurrency
        ]
    if concurrent:
        result.settings["concurrency"] = [c.to_dict() for c in concurrent]
    show(result.to_dict(), "\n".join([result.table(), *(c.describe() for c in concurrent)]), json_out, save_json, force)
    from acmix_deploy.fileio import atomic_output, atomic_write_text

    if csv_file:
        atomic_write_text(csv_file, result.to_csv(), force=force)
    if plot_file:
        with atomic_output(plot_file, force=force) as tmp:
            bench.plot(result, tmp.with_suffix(".png"))
            tmp.with_suffix(".png").replace(tmp)


def profile(
    artifact: Annotated[Path, typer.Argument(help="An ONNX model or TensorRT engine exported by acmix-deploy.")],
    iters: Annotated[int, typer.Option(help="Profiled inferences.")] = 10,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 1,
    top: Annotated[int, typer.Option(help="Kernels (layers) in the top-N table; 0: all of them.")] = 15,
    json_out: JsonFlag = False,
    save_json: SaveJson = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --save-json file.")] = False,
) -> None:
    """Time per layer folded onto ACmix blocks: ONNX Runtime's node profiler, or TensorRT's layer profiler."""
    from acmix_deploy.manifest import is_engine

    at_least(1, iters=iters, batch=batch)
    at_least(0, top=top)
    require_files([artifact])
    if artifact.suffix != ".onnx" and not is_engine(artifact):
        raise UsageError("profile reads ONNX models (.onnx) and TensorRT engines (.engine, .plan, .trt)")
    check_writable([save_json], force)
    if is_engine(artifact):
        from acmix_deploy.profiling.engine_layers import profile_engine

        result = profile_engine(artifact, iterations=iters, batch=batch)
    else:
        from acmix_deploy.profiling.layers import profile_onnx
        from acmix_deploy.runtimes import open_runner

        with open_runner(artifact) as runner:  # the manifest, or one read off the graph when it has none
            manifest = runner.manifest
        result = profile_onnx(artifact, manifest, iterations=iters, batch=batch)
    show(result.to_dict(), result.table(top), json_out, save_json, force)
