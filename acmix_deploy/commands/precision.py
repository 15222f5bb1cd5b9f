"""Precision debugging: ``sensitivity`` (which ACmix stage, block or branch costs fp16/int8 its accuracy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from .common import (
    MAX_IMG_SIZE_OPTION,
    Force,
    JsonFlag,
    TrustPickle,
    UsageError,
    at_least,
    check_writable,
    require_files,
    show,
    stage_printer,
    within,
)

LEVEL_CHOICES = ("stage", "block", "branch")  # exporters.precision.blocks.LEVELS (tested equal), for --help


def sensitivity(
    artifact: Annotated[Path, typer.Argument(help="An fp32 ONNX from export, or a checkpoint (exported first).")],
    precision: Annotated[Literal["fp16", "int8"], typer.Option(help="The precision to debug.")] = "fp16",
    data: Annotated[
        Path | None,
        typer.Option(
            help="Images the errors are measured on (default: int8: the share of --calib held out of "
            "calibration; fp16: --calib's images, else random inputs)."
        ),
    ] = None,
    calib: Annotated[
        Path | None, typer.Option(help="int8: calibration images (folder; without --data, split in two).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Images measured on.")] = 32,
    calib_samples: Annotated[int, typer.Option(help="int8: calibration images used.")] = 64,
    seed: Annotated[int, typer.Option(help="Which images are drawn (the ranking depends on nothing else).")] = 0,
    level: Annotated[
        str, typer.Option(help=f"What to rank: {', '.join(LEVEL_CHOICES)} or a comma-separated list.")
    ] = ",".join(LEVEL_CHOICES),
    alone: Annotated[
        bool, typer.Option("--alone/--no-alone", help="Also measure each unit reduced alone (the rest fp32).")
    ] = True,
    rounds: Annotated[int, typer.Option(help="Interleaved batch-1 rounds timing each fp32 island (0: none).")] = 7,
    max_keep: Annotated[int, typer.Option(help="At most this many names in the keep list.")] = 3,
    int8_target: Annotated[Literal["cpu", "tensorrt"], typer.Option(help="int8: the quantization form.")] = "cpu",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the keep-in-fp32 list (for export --keep-fp32 @FILE).")
    ] = None,
    img_size: Annotated[int | None, typer.Option(help="Checkpoint: input size (ACmix-ResNet).")] = None,
    trust_pickle: TrustPickle = False,
    force: Force = False,
    json_out: JsonFlag = False,
) -> None:
    """Rank stages, blocks and branches by the fp16/int8 logit error they cost; write the keep-in-fp32 list."""
    from acmix_deploy.exporters.precision import PrecisionError
    from acmix_deploy.exporters.precision.block_sensitivity import block_sensitivity, check_options
    from acmix_deploy.exporters.precision.blocks import parse_levels

    try:
        levels = parse_levels(level)  # the library's check: one wording, exit 2 here
    except PrecisionError as exc:
        raise UsageError(f"--level: {exc}") from None
    try:
        check_options(precision, calib, int8_target)  # the library's (int8 needs --calib...): exit 2 here too
    except PrecisionError as exc:
        raise UsageError(str(exc)) from None
    at_least(1, samples=samples, calib_samples=calib_samples)
    at_least(0, rounds=rounds, max_keep=max_keep)
    within(1, MAX_IMG_SIZE_OPTION, img_size=img_size)
    require_files([artifact])
    require_files([p for p in (data, calib) if p is not None], directories=True)
    check_writable([output], force)  # refused before any work
    from acmix_deploy.exporters.precision.blocks import keep_list_text
    from acmix_deploy.fileio import atomic_write_text

    report = block_sensitivity(
        artifact, precision, data=data, calib=calib, samples=samples, calib_samples=calib_samples, seed=seed,
        levels=levels, alone=alone, timing_rounds=rounds, max_keep=max_keep, int8_target=int8_target,
        img_size=img_size, trust_pickle=trust_pickle, progress=stage_printer(json_out),
    )  # fmt: skip
    text = report.table()
    if output is not None:
        header = [
            f"{precision} keep-in-fp32 list from acmix-deploy sensitivity {artifact.name} (seed {seed})",
            f"use: acmix-deploy export CHECKPOINT --precision {precision} --keep-fp32 @{output.name}",
        ]
        atomic_write_text(output, keep_list_text(report.keep, header), force=force)
        text += f"\nwrote {output}"
    show(report.to_dict(), text, json_out)
