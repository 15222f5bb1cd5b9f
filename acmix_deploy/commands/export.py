"""Making artifacts: ``export`` (the export pipeline), ``build`` (a TensorRT engine), ``triton`` (a repository)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import typer

from acmix_deploy.exporters.pipeline import CALIBRATION_METHODS, FORMATS, INT8_TARGETS, PRECISIONS
from acmix_deploy.exporters.triton_config import KINDS
from acmix_deploy.runtimes.tensorrt_compat import HARDWARE_LEVELS

from .common import (
    MAX_BATCH_OPTION,
    MAX_IMG_SIZE_OPTION,
    JsonFlag,
    Labels,
    TrustPickle,
    UsageError,
    at_least,
    deprecated,
    ints,
    require_files,
    show,
    stage_printer,
    within,
)

Int8Target = Literal[INT8_TARGETS]
Format = Literal[FORMATS]
Kind = Literal[KINDS]
HardwareLevel = Literal[HARDWARE_LEVELS]


def export(
    checkpoint: Annotated[Path, typer.Argument(help="An ACmix checkpoint (.pth, .pth.tar, .pt, .safetensors).")],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Default: the checkpoint's.")] = None,
    name: Annotated[str | None, typer.Option(help="Artifact file stem (default: the checkpoint's).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17; 20 keeps GELU one op).")] = 20,
    batch: Annotated[int | None, typer.Option(help="Fixed batch size (default: dynamic batch).")] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch a dynamic-batch artifact promises.")] = 32,
    img_size: Annotated[int | None, typer.Option(help="Input resolution (ACmix-ResNet; Swin uses its own).")] = None,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Export the reference model unchanged.")] = False,
    skip_latency: Annotated[bool, typer.Option("--skip-latency", help="Do not time ORT against torch.")] = False,
    trust_pickle: TrustPickle = False,
    precision: Annotated[
        str, typer.Option(help=f"{', '.join(PRECISIONS)} or a list: fp32,fp16 (adds NAME.fp16.onnx).")
    ] = "fp32",
    calib: Annotated[Path | None, typer.Option(help="int8: calibration images (folder).")] = None,
    calib_samples: Annotated[int, typer.Option(help="int8: calibration images to use.")] = 256,
    calib_method: Annotated[Literal[CALIBRATION_METHODS], typer.Option(help="int8: calibration method.")] = "minmax",
    eval_data: Annotated[
        Path | None, typer.Option(help="fp16/int8: held-out images: accuracy recorded, each variant checked on them.")
    ] = None,
    int8_target: Annotated[Int8Target, typer.Option(help="int8: cpu, cpu-dynamic (no calibration), tensorrt.")] = "cpu",
    keep_fp32: Annotated[
        str | None,
        typer.Option(
            "--keep-fp32",
            metavar="NAMES",
            help="fp16/int8: blocks kept in fp32, as profile/sensitivity name them (layer2.0,stem/head or @FILE).",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="engine: engines only (the ONNX made is removed).")] = "onnx",
    labels: Labels = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing artifacts.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Rewrite, export to ONNX, optimise, check and prove parity against the checkpoint's own model."""
    from acmix_deploy.exporters import pipeline
    from acmix_deploy.exporters.precision.blocks import parse_keep_fp32
    from acmix_deploy.labels import read_labels
    from acmix_deploy.text import plain_name_problem

    if output_dir is not None and output_dir.suffix == ".onnx" and not output_dir.is_dir():
        # -o r50.onnx means that file (it made a folder r50.onnx holding r50.onnx): its folder and its name
        if name is not None and name != output_dir.stem:
            raise UsageError(f"-o {output_dir.name} names the file but --name says {name!r}: give one of them")
        output_dir, name = output_dir.parent, output_dir.stem
    if name is not None and (problem := plain_name_problem(name)):  # "../x" wrote outside --output-dir
        raise UsageError(f"--name {problem}")
    within(1, MAX_IMG_SIZE_OPTION, img_size=img_size)  # 10^9 asked the allocator for 10^18 bytes
    within(1, MAX_BATCH_OPTION, max_batch=max_batch, batch=batch)
    names = tuple(read_labels(labels)) if labels is not None else None  # refused before any work
    onnx = pipeline.OnnxSettings(
        opset=opset,
        batch=batch,
        max_batch=max_batch,
        img_size=img_size,
        rewrite=not no_rewrite,
        measure_latency=not skip_latency,
        trust_pickle=trust_pickle,
        labels=names,
    )
    int8 = pipeline.Int8Settings(target=int8_target, calibration=calib, samples=calib_samples, method=calib_method)
    report = pipeline.export(
        checkpoint,
        output_dir,
        name=name,
        precision=precision,
        format=fmt,
        onnx=onnx,
        int8=int8,
        eval_data=eval_data,
        keep_fp32=parse_keep_fp32(keep_fp32),
        force=force,
        progress=stage_printer(json_out),
    )
    text = "\n" + "\n".join(f"  {key:<9} {value}" for key, value in report.summary())
    show(report.to_dict(), text, json_out)


def build(
    onnx_model: Annotated[Path, typer.Argument(help="An ONNX model exported by acmix-deploy.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Engine file (default: MODEL.engine).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="FP16 engine.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="INT8 engine from a Q/DQ ONNX.")] = False,
    min_batch: Annotated[int, typer.Option("--min-batch", help="Profile minimum batch.")] = 1,
    opt_batch: Annotated[int | None, typer.Option("--opt-batch", help="Profile optimum batch.")] = None,
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="Profile maximum batch.")] = None,
    workspace: Annotated[float, typer.Option(help="Builder workspace in GiB.")] = 4.0,
    timing_cache: Annotated[
        Path | None, typer.Option("--timing-cache", help="Timing cache file (read+written).")
    ] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Save engine-inspector layer info.")] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile", metavar="MIN:OPT:MAX", help="Batch sizes of one optimisation profile; repeat for several."
        ),
    ] = None,
    version_compatible: Annotated[
        bool, typer.Option("--version-compatible", help="Engine later TensorRT releases can run.")
    ] = False,
    exclude_lean_runtime: Annotated[
        bool, typer.Option("--exclude-lean-runtime", help="With --version-compatible: no lean runtime in the plan.")
    ] = False,
    hardware_compatibility: Annotated[
        HardwareLevel, typer.Option("--hardware-compatibility", help="GPUs the engine may run on.")
    ] = "none",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing engine.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Build a TensorRT engine (plain plan + JSON sidecar) from an exported ONNX model."""
    if fp16 and int8:
        raise UsageError("choose one of --fp16 and --int8")
    if workspace <= 0:
        raise UsageError(f"--workspace must be > 0, got {workspace}")
    require_files([onnx_model])
    from acmix_deploy.exporters.tensorrt import BuildError, build_engine
    from acmix_deploy.exporters.tensorrt.profile import parse_profile

    try:
        for spec in profile or []:
            parse_profile(spec)
    except BuildError as exc:
        raise UsageError(f"--profile: {exc}") from None

    report = build_engine(
        onnx_model,
        output or onnx_model.with_suffix(".engine"),
        precision="int8" if int8 else "fp16" if fp16 else "fp32",
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        profiles=profile or None,
        workspace_gb=workspace,
        timing_cache=timing_cache,
        inspector_json=layers,
        version_compatible=version_compatible,
        exclude_lean_runtime=exclude_lean_runtime,
        hardware_compatibility=hardware_compatibility,
        force=force,
        progress=lambda stage, message: typer.echo(f"{stage:<9} {message}", err=json_out),
    )
    text = (
        f"wrote {report.engine_path} (+ {report.sidecar_path.name}): {report.precision}, profiles "
        f"{', '.join(str(p.batches) for p in report.profiles)}, {report.size_bytes / 1e6:.1f} MB in "
        f"{report.build_seconds:.1f} s"
    )
    show(report.to_dict(), text, json_out)


def convert(
    model: Annotated[Path, typer.Argument(help="An fp32 ONNX exported by acmix-deploy (dynamic batch).")],
    precision: Annotated[str, typer.Option(help="fp16, int8 or fp16,int8 (writes MODEL.fp16.onnx ...).")] = "fp16",
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Default: the model's.")] = None,
    calib: Annotated[Path | None, typer.Option(help="int8: calibration images (folder: the training split).")] = None,
    calib_samples: Annotated[int, typer.Option(help="int8: calibration images to use.")] = 256,
    calib_method: Annotated[Literal[CALIBRATION_METHODS], typer.Option(help="int8: calibration method.")] = "minmax",
    int8_target: Annotated[Int8Target, typer.Option(help="int8: cpu, cpu-dynamic (no calibration), tensorrt.")] = "cpu",
    eval_data: Annotated[
        Path | None, typer.Option(help="Held-out images: accuracy recorded, each variant checked on them.")
    ] = None,
    keep_fp32: Annotated[
        str | None,
        typer.Option("--keep-fp32", metavar="NAMES", help="Blocks kept in fp32 (layer2.0,stem/head or @FILE)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing variants.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """fp16/int8 variants of an existing fp32 ONNX, proven against it (export's variant stage, no re-export)."""
    from acmix_deploy.exporters.pipeline import Int8Settings
    from acmix_deploy.exporters.precision.blocks import parse_keep_fp32
    from acmix_deploy.exporters.variants import convert as run_convert

    int8 = Int8Settings(target=int8_target, calibration=calib, samples=calib_samples, method=calib_method)
    report = run_convert(
        model,
        output_dir,
        precision=precision,
        int8=int8,
        eval_data=eval_data,
        force=force,
        progress=stage_printer(json_out),
        keep_fp32=parse_keep_fp32(keep_fp32),
    )
    text = "\n" + "\n".join(f"  {key:<9} {value}" for key, value in report.summary())
    show(report.to_dict(), text, json_out)


def triton(
    artifacts: Annotated[list[Path], typer.Argument(help="ONNX models or TensorRT plans to serve.")],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Model repository directory.")] = None,
    output: Annotated[Path | None, typer.Option("--output", hidden=True)] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: each artifact's stem).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="max_batch_size (new model: the artifact's limit).")] = None,
    preferred_batch: Annotated[str | None, typer.Option(help="Preferred dynamic batch sizes (new model: 4,8).")] = None,
    max_queue_delay_us: Annotated[int | None, typer.Option(help="Batcher queue delay, us (new model: 100).")] = None,
    instances: Annotated[int | None, typer.Option(help="Model instances (new model: 1).")] = None,
    kind: Annotated[Kind | None, typer.Option(help="Where the instances run (new model: cpu).")] = None,
    ort_tensorrt: Annotated[
        bool | None, typer.Option("--ort-tensorrt/--no-ort-tensorrt", help="ONNX: ORT's TensorRT accelerator.")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write (or add versions to) a Triton Inference Server model repository.

    A new version keeps the model's serving settings; only the options given change them.
    """
    from acmix_deploy.exporters.triton import write_triton_repository

    repo = deprecated(output, "--output", "--output-dir", output_dir)
    if repo is None:
        raise UsageError("missing option '-o' / '--output-dir': the model repository directory")
    preferred = ints(preferred_batch, "--preferred-batch") if preferred_batch is not None else None
    at_least(1, max_batch=max_batch, instances=instances)
    at_least(0, max_queue_delay_us=max_queue_delay_us)
    reports = []
    for artifact in artifacts:
        reports.append(
            write_triton_repository(
                artifact,
                repo,
                name=name,
                max_batch=max_batch,
                preferred_batch=preferred,
                max_queue_delay_us=max_queue_delay_us,
                instances=instances,
                kind=kind,
                ort_tensorrt=ort_tensorrt,
            )
        )
        typer.echo(
            f"{artifact} -> {reports[-1].model_dir}/{reports[-1].version} ({reports[-1].platform})", err=json_out
        )
    payload = {"repository": str(repo.resolve()), "models": [dataclasses.asdict(r) for r in reports]}
    show(payload, f"serve: tritonserver --model-repository={repo.resolve()}", json_out)
