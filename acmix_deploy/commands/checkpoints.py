"""Model zoo and checkpoints: ``models``, ``inspect``, ``init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import EXIT_FAILURE, Force, JsonFlag, TrustPickle, UsageError, at_least, require_files, show


def models(json_out: JsonFlag = False) -> None:
    """List the model zoo: parameters and compute at the default input size."""
    from acmix_deploy.models.complexity import zoo_table

    rows = zoo_table()
    lines = [f"{'name':<18} {'family':<13} {'params':>8} {'GMACs':>7} {'input':>6}"]
    for r in rows:
        lines.append(
            f"{r['name']:<18} {r['family']:<13} {r['params'] / 1e6:>7.2f}M {r['macs'] / 1e9:>7.2f} {r['img_size']:>6}"
        )
    show(rows, "\n".join(lines), json_out)


def inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint (.pth, .pth.tar, .pt, .safetensors) or an ONNX model.")],
    trust_pickle: TrustPickle = False,
    tensorrt: Annotated[bool, typer.Option("--tensorrt", help="ONNX: can TensorRT's ONNX parser take it?")] = False,
    trt_major: Annotated[int, typer.Option(help="TensorRT major version for --tensorrt (10 or 11).")] = 10,
    json_out: JsonFlag = False,
) -> None:
    """Show what a checkpoint or ONNX model holds; with --tensorrt, whether TensorRT can build it."""
    require_files([path])
    if path.suffix != ".onnx":
        if tensorrt:
            raise UsageError("--tensorrt inspects ONNX models; export the checkpoint first")
        from acmix_deploy import read_checkpoint

        info = read_checkpoint(path, trust_pickle=trust_pickle).summary()
        return show(info, _checkpoint_text(info), json_out)
    if tensorrt or trt_major != 10:  # the support table loads with the TensorRT exporter: only when needed
        from acmix_deploy.exporters.tensorrt import SUPPORT_TABLE

        if trt_major not in SUPPORT_TABLE["majors"]:
            raise UsageError(f"--trt-major must be one of {', '.join(map(str, SUPPORT_TABLE['majors']))}")
    from acmix_deploy.exporters.artifact_info import inspect_onnx

    result = inspect_onnx(path, trt_major=trt_major if tensorrt else None)
    show(result.to_dict(), result.text(), json_out)
    if result.problem:  # untrusted metadata that contradicts the graph: refused in one line, as elsewhere
        from acmix_deploy.manifest import ManifestError

        raise ManifestError(result.problem)
    if result.blocked:
        raise typer.Exit(EXIT_FAILURE)


def _checkpoint_text(info: dict) -> str:
    hp = ", ".join(f"{k}={v}" for k, v in info["hparams"].items())
    assumed = f" (assumed, no tensor records them: {', '.join(info['assumed'])})" if info["assumed"] else ""
    model = f"  = {info['variant']}" if info["variant"] else "  (custom configuration)"
    lines = [
        f"file        {info['path']}  [{info['format']}, layout {info['layout']}]",
        f"sha256      {info['sha256']}",
        f"model       {info['family']}{model}",
        f"hparams     {hp}",
        f"input       {info['img_size']} px{assumed}",
        f"tensors     {info['tensors']}, {info['parameters'] / 1e6:.2f}M values",
    ]
    meta = {k: v for k, v in info["metadata"].items() if k != "config"}
    if meta:
        lines.append("metadata    " + ", ".join(f"{k}={v}" for k, v in meta.items()))
    if "config" in info["metadata"]:
        lines.append("config      stored training config read as data (yacs not needed)")
    return "\n".join(lines)


def init(
    name: Annotated[str, typer.Argument(help="A model name from `acmix-deploy models`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Checkpoint file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
    layout: Annotated[str, typer.Option(help="File layout: official, state-dict or safetensors.")] = "official",
    num_classes: Annotated[int | None, typer.Option(help="Classifier size (default: the variant's).")] = None,
    img_size: Annotated[
        int | None, typer.Option(help="Training resolution (built into Swin; recorded in an ACmix-ResNet checkpoint).")
    ] = None,
    force: Force = False,
) -> None:
    """Write a randomly initialised checkpoint in the official file layout (to try the pipeline)."""
    import torch

    from acmix_deploy.checkpoint import LAYOUTS, save_checkpoint
    from acmix_deploy.families import get_family
    from acmix_deploy.fileio import check_writable
    from acmix_deploy.models import build_model, get_entry, list_models

    if name not in list_models():
        raise UsageError(f"unknown model {name!r}; choose from: {', '.join(list_models())}")
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; choose from: {', '.join(LAYOUTS)}")
    at_least(1, img_size=img_size)
    check_writable(output, force=force)
    family = get_family(get_entry(name).family)
    recorded = None if family.fixed_input_size else img_size  # a size built into the model needs no record
    if recorded is not None and layout == "state-dict":
        raise UsageError("a bare state dict cannot record --img-size; use --layout official or safetensors")
    overrides = {"num_classes": num_classes} if num_classes is not None else {}
    torch.manual_seed(seed)
    try:
        model = build_model(name, **overrides, **family.size_overrides(img_size))
        if img_size is not None:
            family.check_input_size(model, img_size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    save_checkpoint(model, output, layout=layout, name=name, force=force, img_size=recorded)
    typer.echo(f"wrote {output} ({name}, {layout} layout, seed {seed})")
