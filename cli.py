"""The ``acmix-deploy`` command line: thin wiring from commands to library functions.

Every command turns our own errors into one line on stderr and exit code 1; bad usage
exits 2 (Typer's convention); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="acmix-deploy",
    help="Ship ACmix checkpoints: rewrite, export to ONNX/TensorRT, run and benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from acmix_deploy import __version__

        typer.echo(f"acmix-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def models(json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the model zoo: parameters and compute at the default input size."""
    from acmix_deploy.models import list_models
    from acmix_deploy.models.complexity import describe

    rows = [describe(name) for name in list_models()]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'name':<18} {'family':<13} {'params':>8} {'GMACs':>7} {'input':>6}")
    for r in rows:
        typer.echo(
            f"{r['name']:<18} {r['family']:<13} {r['params'] / 1e6:>7.2f}M {r['macs'] / 1e9:>7.2f} {r['img_size']:>6}"
        )


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint (.pth, .pth.tar, .pt, .safetensors) or an ONNX model.")],
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow arbitrary unpickling (runs code).")
    ] = False,
    tensorrt: Annotated[
        bool, typer.Option("--tensorrt", help="ONNX: check the graph against TensorRT's ONNX parser support.")
    ] = False,
    trt_major: Annotated[int, typer.Option(help="TensorRT major version for --tensorrt (10 or 11).")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a checkpoint or ONNX model holds; with --tensorrt, whether TensorRT can build it."""
    from acmix_deploy import read_checkpoint

    if path.suffix == ".onnx":
        _inspect_onnx(path, tensorrt, trt_major, json_out)
        return
    if tensorrt:
        raise fail("--tensorrt inspects ONNX models; export the checkpoint first", 2)
    info = read_checkpoint(path, trust_pickle=trust_pickle).summary()
    if json_out:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    hp = ", ".join(f"{k}={v}" for k, v in info["hparams"].items())
    assumed = f" (assumed, no tensor records them: {', '.join(info['assumed'])})" if info["assumed"] else ""
    lines = [
        f"file        {info['path']}  [{info['format']}, layout {info['layout']}]",
        f"sha256      {info['sha256']}",
        f"model       {info['family']}" + (f"  = {info['variant']}" if info["variant"] else "  (custom configuration)"),
        f"hparams     {hp}",
        f"input       {info['img_size']} px{assumed}",
        f"tensors     {info['tensors']}, {info['parameters'] / 1e6:.2f}M values",
    ]
    meta = {k: v for k, v in info["metadata"].items() if k != "config"}
    if meta:
        lines.append("metadata    " + ", ".join(f"{k}={v}" for k, v in meta.items()))
    if "config" in info["metadata"]:
        lines.append("config      stored training config read as data (yacs not needed)")
    typer.echo("\n".join(lines))


def _inspect_onnx(path: Path, tensorrt: bool, trt_major: int, json_out: bool) -> None:
    from acmix_deploy.exporters.triton import TritonError, read_manifest
    from acmix_deploy.manifest import ManifestError

    if not path.is_file():
        raise fail(f"{path}: no such file")
    if trt_major not in (10, 11):
        raise fail(f"--trt-major must be 10 or 11, got {trt_major}", 2)
    try:
        manifest = read_manifest(path).to_dict()
    except (TritonError, ManifestError) as exc:
        manifest = {"error": str(exc)}
    findings = []
    if tensorrt:
        from acmix_deploy.exporters.tensorrt_support import check_tensorrt_readiness, format_findings, has_blockers

        findings = check_tensorrt_readiness(path, trt_major=trt_major)
    if json_out:
        payload = {"manifest": manifest, "tensorrt": [f.__dict__ for f in findings] if tensorrt else None}
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        if "error" in manifest:
            typer.echo(f"manifest    none ({manifest['error']})")
        else:
            batch = manifest["batch"]
            typer.echo(
                f"model       {manifest['variant'] or manifest['family']}, {manifest['img_size']} px, "
                f"{manifest['num_classes']} classes, {manifest['precision']}, opset {manifest['opset']}"
            )
            typer.echo(f"batch       {'dynamic' if batch['dynamic'] else 'fixed'} {batch['min']}..{batch['max']}")
            parity = manifest.get("parity", {}).get("onnxruntime_vs_torch_reference")
            if parity:
                typer.echo(f"parity      max|diff| {parity['max_abs_diff']:.2e}, passed: {parity['passed']}")
        if tensorrt:
            typer.echo(f"TensorRT {trt_major} readiness:")
            typer.echo(format_findings(findings) or "  no findings")
    if tensorrt and has_blockers(findings):
        raise typer.Exit(1)


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="A model name from `acmix-deploy models`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Checkpoint file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
    layout: Annotated[str, typer.Option(help="official | state-dict | safetensors")] = "official",
    num_classes: Annotated[int | None, typer.Option(help="Classifier size (default: the variant's).")] = None,
    img_size: Annotated[
        int | None,
        typer.Option(help="Training resolution (Swin: built in; ACmix-ResNet: recorded in the checkpoint)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a randomly initialised checkpoint in the official file layout (to try the pipeline)."""
    import torch

    from acmix_deploy.checkpoint import LAYOUTS, save_checkpoint
    from acmix_deploy.fileio import check_writable
    from acmix_deploy.models import build_model, get_entry, list_models

    if name not in list_models():
        raise fail(f"unknown model {name!r}; choose from: {', '.join(list_models())}", 2)
    if layout not in LAYOUTS:
        raise fail(f"unknown layout {layout!r}; choose from: {', '.join(LAYOUTS)}", 2)
    check_writable(output, force=force)
    overrides: dict = {}
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    swin = get_entry(name).family == "acmix_swin"
    if img_size is not None:
        if img_size < 1:
            raise fail(f"--img-size must be >= 1, got {img_size}", 2)
        if not swin and layout == "state-dict":
            raise fail("a bare state dict cannot record --img-size; use --layout official or safetensors", 2)
        if swin:
            overrides["img_size"] = img_size
    torch.manual_seed(seed)
    try:
        model = build_model(name, **overrides)
        if img_size is not None and not swin:
            from acmix_deploy.models.input_size import check_input_size

            check_input_size(model, img_size)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    recorded = img_size if not swin else None
    save_checkpoint(model, output, layout=layout, name=name, force=force, img_size=recorded)
    typer.echo(f"wrote {output} ({name}, {layout} layout, seed {seed})")


CHECKPOINT_SUFFIXES = (".pth.tar", ".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def artifact_stem(path: Path) -> str:
    """``r50.pth.tar`` -> ``r50``."""
    name = path.name
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="An ACmix checkpoint (.pth, .pth.tar, .pt, .safetensors).")],
    output_dir: Annotated[
        Path | None, typer.Option("-o", "--output-dir", help="Directory for the artifacts (default: the checkpoint's).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Artifact file stem (default: the checkpoint's).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17; 20 keeps GELU one op).")] = 20,
    batch: Annotated[int | None, typer.Option(help="Fixed batch size (default: dynamic batch).")] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch a dynamic-batch artifact promises.")] = 32,
    img_size: Annotated[int | None, typer.Option(help="Input resolution (ACmix-ResNet; Swin uses its own).")] = None,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Export the reference model unchanged.")] = False,
    skip_latency: Annotated[bool, typer.Option("--skip-latency", help="Do not time ORT against torch.")] = False,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow arbitrary unpickling (runs code).")
    ] = False,
    precision: Annotated[
        str,
        typer.Option(help="fp32 | fp16 | int8, or several (fp16,int8): each also writes NAME.<precision>.onnx."),
    ] = "fp32",
    calib: Annotated[Path | None, typer.Option(help="int8: calibration images (folder).")] = None,
    calib_samples: Annotated[int, typer.Option(help="int8: calibration images to use.")] = 256,
    calib_method: Annotated[str, typer.Option(help="int8: minmax | entropy | percentile.")] = "minmax",
    eval_data: Annotated[
        Path | None, typer.Option(help="fp16/int8: image folder to measure accuracy on; recorded in the manifest.")
    ] = None,
    int8_target: Annotated[
        str, typer.Option(help="int8: cpu (static U8S8) | cpu-dynamic (no calibration) | tensorrt (symmetric S8 Q/DQ).")
    ] = "cpu",
    fmt: Annotated[str, typer.Option("--format", help="onnx | engine | all (engine needs TensorRT).")] = "onnx",
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one per line in output order; recorded in the manifest.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing artifacts.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rewrite, export to ONNX, optimise, check and prove parity against the checkpoint's own model."""
    import time

    from acmix_deploy.exporters.onnx import export_onnx

    if batch is not None and batch < 1:
        raise fail(f"--batch must be >= 1, got {batch}", 2)
    if max_batch < 1:
        raise fail(f"--max-batch must be >= 1, got {max_batch}", 2)
    if opset < 17:
        raise fail(f"--opset must be >= 17 (LayerNormalization), got {opset}", 2)
    precisions = list(dict.fromkeys(p.strip() for p in precision.split(",") if p.strip()))
    if not precisions or any(p not in ("fp32", "fp16", "int8") for p in precisions):
        raise fail(f"--precision must be fp32, fp16, int8 or a comma-separated list of them, got {precision!r}", 2)
    if calib_method not in ("minmax", "entropy", "percentile") or int8_target not in ("cpu", "cpu-dynamic", "tensorrt"):
        raise fail("--calib-method must be minmax|entropy|percentile and --int8-target cpu|cpu-dynamic|tensorrt", 2)
    if "int8" in precisions and calib is None and int8_target != "cpu-dynamic":
        raise fail("--precision int8 needs --calib DIR (calibration images), except --int8-target cpu-dynamic", 2)
    if calib_samples < 1:
        raise fail(f"--calib-samples must be >= 1, got {calib_samples}", 2)
    if fmt not in ("onnx", "engine", "all"):
        raise fail(f"--format must be onnx, engine or all, got {fmt!r}", 2)
    reduced = [p for p in precisions if p != "fp32"]
    if reduced and batch is not None:
        raise fail("fp16/int8 variants need a dynamic-batch export; drop --batch", 2)
    if fmt != "onnx" and "int8" in precisions and int8_target != "tensorrt":
        raise fail("an int8 engine needs the TensorRT form: add --int8-target tensorrt (symmetric Q/DQ)", 2)
    if fmt != "onnx":
        from acmix_deploy.runtimes.tensorrt import import_tensorrt

        import_tensorrt()  # fail fast, before the export, when TensorRT is missing
    if not checkpoint.is_file():
        raise fail(f"{checkpoint}: no such file")
    out_dir = output_dir if output_dir is not None else checkpoint.parent
    target = out_dir / f"{name or artifact_stem(checkpoint)}.onnx"
    variant_paths = {p: target.with_name(f"{target.stem}.{p}.onnx") for p in reduced}
    engine_sources: list[tuple[str, Path]] = []  # an engine per requested precision, from the ONNX of its types
    if fmt != "onnx":
        engine_sources = [("fp32", target)] if "fp32" in precisions else []
        engine_sources += variant_paths.items()
    from acmix_deploy.fileio import check_writable
    from acmix_deploy.manifest import sidecar_path

    planned = [target, *variant_paths.values(), *(source.with_suffix(".engine") for _, source in engine_sources)]
    for path in planned:  # refuse before any work, not after the first artifact is written
        check_writable(path, force=force)
        check_writable(sidecar_path(path), force=force)
    class_names = None
    if labels is not None:
        from acmix_deploy.labels import read_labels

        class_names = read_labels(labels)
    started = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        if not json_out:
            typer.echo(f"[{time.perf_counter() - started:6.1f}s] {stage:<9} {message}")

    report = export_onnx(
        checkpoint,
        target,
        batch=batch,
        max_batch=max_batch,
        opset=opset,
        rewrite=not no_rewrite,
        img_size=img_size,
        force=force,
        measure_latency=not skip_latency,
        trust_pickle=trust_pickle,
        labels=class_names,
        progress=progress,
    )
    variants: list[tuple[str, Path, str]] = []  # (precision, ONNX, what its conversion measured)
    for lower in reduced:
        from acmix_deploy.exporters.precision import to_fp16, to_int8, to_int8_dynamic

        variant = variant_paths[lower]
        if lower == "fp16":
            result = to_fp16(report.path, variant, force=force, eval_dir=eval_data)
        elif int8_target == "cpu-dynamic":
            result = to_int8_dynamic(report.path, variant, force=force, eval_dir=eval_data)
        else:
            result = to_int8(
                report.path,
                variant,
                calibration=calib,
                samples=calib_samples,
                method=calib_method,
                target=int8_target,
                force=force,
                eval_dir=eval_data,
            )
        variants.append((lower, variant, result.describe()))
        progress(lower, f"{variant}: {variants[-1][2]}")
    if fmt != "onnx":
        from acmix_deploy.exporters.tensorrt import build_engine

        for engine_precision, source in engine_sources:
            build_engine(
                source, source.with_suffix(".engine"), precision=engine_precision, force=force, progress=progress
            )
        if fmt == "engine":  # keep only the engines (and the ONNX's sidecar, which each engine embeds)
            report.path.unlink()
    if json_out:
        out = report.to_dict()
        if variants:
            out["variants"] = [{"precision": p, "path": str(path), "result": note} for p, path, note in variants]
        typer.echo(json.dumps(out, indent=2))
        return
    parity = report.parity
    lat = report.latency_ms
    rows = [
        ("artifact", f"{report.path} (+ {report.path.name}.json)"),
        (
            "model",
            f"{report.manifest.variant or report.manifest.family}, {report.manifest.img_size} px, "
            f"batch {'1..' + str(report.manifest.batch['max']) if report.manifest.batch['dynamic'] else batch}",
        ),
        ("nodes", f"{report.nodes}  (" + ", ".join(f"{k} {v}" for k, v in list(report.ops.items())[:6]) + ", ...)"),
        ("size", f"{report.size_bytes / 1e6:.1f} MB"),
        ("parity", parity.describe() if parity else "not checked"),
        *[(p, f"{path.name}: {note}") for p, path, note in variants],
        ("time", f"{time.perf_counter() - started:.1f} s"),
    ]
    if lat:
        speedup = lat["torch_reference"] / lat["onnxruntime"]
        rows.append(
            (
                "latency",
                f"ORT {lat['onnxruntime']:.1f} ms vs torch reference {lat['torch_reference']:.1f} ms "
                f"at batch {batch or 1} ({speedup:.2f}x; median of 5, interleaved)",
            )
        )
    typer.echo("")
    for key, value in rows:
        typer.echo(f"  {key:<9} {value}")


def _csv_ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{option} expects comma-separated integers, got {text!r}", 2) from None
    if not values or any(v < 1 for v in values):
        raise fail(f"{option} expects positive integers, got {text!r}", 2)
    return values


def _check_backend(backend: str | None) -> None:
    from acmix_deploy.runtimes import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise fail(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}", 2)


def _shared_img_size(paths: list[Path], backend: str | None, img_size: int | None) -> int | None:
    """The input size checkpoints should run at: --img-size, else that of the first non-checkpoint artifact.

    An ACmix-ResNet checkpoint records no input size (it runs at any), so comparing it with a 64 px
    ONNX means running it at 64 px.
    """
    if img_size:
        return img_size
    from acmix_deploy.runtimes import backend_for, open_runner

    for path in paths:
        if (backend or backend_for(path)) != "torch":
            with open_runner(path, backend) as runner:
                return runner.manifest.img_size
    return None


def _shared_class_names(artifacts: list[Path], data: Path) -> list[str] | None:
    """Class names recorded by one of the artifacts, when the folders fit them: used for all.

    Artifacts compared side by side must index the folders alike; one that names its classes
    (``export --labels``) decides for those that do not (a checkpoint, an older export).
    """
    from acmix_deploy.errors import AcmixDeployError
    from acmix_deploy.evaluate import index_image_folder, labels_fit_folders

    try:
        folders = index_image_folder(data).classes
    except AcmixDeployError:
        return None  # evaluate reports the folder problem itself
    for artifact in artifacts:
        data_ = _sidecar_json(artifact)
        if data_ is None:
            continue
        inner = data_.get("manifest")  # an engine sidecar nests the ONNX's manifest
        labels = data_.get("labels", inner.get("labels") if isinstance(inner, dict) else None)
        if isinstance(labels, list) and all(isinstance(x, str) for x in labels) and labels_fit_folders(labels, folders):
            return labels
    return None


def _sidecar_json(artifact: Path) -> dict | None:
    """An artifact's ``<artifact>.json`` as a dict; ``None`` when it is missing or unreadable (display only)."""
    from acmix_deploy.manifest import sidecar_path

    try:
        data = json.loads(sidecar_path(artifact).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _recorded_precision(artifact: Path) -> str:
    """What an artifact's sidecar manifest records about its precision (fp16/int8 exports measure it)."""
    data = _sidecar_json(artifact)
    if data is None:
        return ""
    text = f"precision {data.get('precision', '?')}"
    report = data.get("precision_report") or {}
    accuracy = report.get("accuracy") if isinstance(report, dict) else None
    if isinstance(accuracy, dict) and "top1_percent" in accuracy:
        text += (
            f"; recorded at export: top-1 {accuracy['top1_percent']}% vs fp32 {accuracy.get('fp32_top1_percent')}%"
            f" on {accuracy.get('images')} images, agreement {accuracy.get('top1_agreement_percent')}%"
        )
    speed = report.get("speed") if isinstance(report, dict) else None
    if isinstance(speed, dict) and "speedup_vs_fp32" in speed:
        text += f"; ORT CPU batch 1 {speed['speedup_vs_fp32']}x fp32 speed"
    return text


def _runner_options(threads: int, no_rewrite: bool, img_size: int | None, backend: str | None, path: Path) -> dict:
    from acmix_deploy.runtimes import backend_for

    chosen = backend or backend_for(path)
    if chosen == "onnxruntime":
        return {"threads": threads} if threads else {}
    if chosen == "torch":
        return {"rewrite": not no_rewrite, **({"img_size": img_size} if img_size else {})}
    return {}


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Checkpoint, ONNX model or engine.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes per image.")] = 5,
    backend: Annotated[str | None, typer.Option(help="torch | onnxruntime | tensorrt (default: by suffix).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file, one class name per line.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Classify images with any artifact, using the preprocessing recorded in its manifest."""
    from acmix_deploy import Predictor

    if top_k < 1:
        raise fail(f"--top-k must be >= 1, got {top_k}", 2)
    _check_backend(backend)
    if not artifact.exists():
        raise fail(f"{artifact}: no such file")
    with Predictor.load(artifact, backend=backend, labels=labels) as predictor:
        results = predictor.predict([str(p) for p in images], top_k=top_k)
    if json_out:
        payload = [
            {"image": str(img), "predictions": [p.__dict__ for p in preds]}
            for img, preds in zip(images, results, strict=True)
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    for img, preds in zip(images, results, strict=True):
        typer.echo(f"{img}")
        for p in preds:
            typer.echo(f"  {p.probability:7.2%}  {p.index:>5}  {p.label}")


@app.command()
def verify(
    artifacts: Annotated[list[Path], typer.Argument(help="Two or more artifacts; the first is the reference.")],
    batch: Annotated[int, typer.Option(help="Inputs per comparison.")] = 4,
    images: Annotated[
        list[Path] | None, typer.Option("--image", help="Use these images instead of random inputs.")
    ] = None,
    rtol: Annotated[float, typer.Option(help="Max |diff| allowed, relative to max(1, max|reference|).")] = 1e-4,
    min_cosine: Annotated[float, typer.Option(help="Minimum cosine similarity per sample.")] = 0.99999,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Checkpoints run the reference model.")] = False,
    img_size: Annotated[int | None, typer.Option(help="Input size for ACmix-ResNet checkpoints.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run the same inputs through every artifact and compare each with the first (like polygraphy run)."""
    from acmix_deploy.parity import Tolerance, compare_outputs, random_inputs
    from acmix_deploy.preprocess import preprocess
    from acmix_deploy.runtimes import open_runner

    if len(artifacts) < 2:
        raise fail("verify needs at least two artifacts", 2)
    if batch < 1:
        raise fail(f"--batch must be >= 1, got {batch}", 2)
    for path in artifacts:
        if not path.exists():
            raise fail(f"{path}: no such file")
    size = _shared_img_size(artifacts, None, img_size)
    runners = [open_runner(p, **_runner_options(0, no_rewrite, size, None, p)).activate() for p in artifacts]
    sizes = {r.manifest.img_size for r in runners}
    if len(sizes) != 1:
        raise fail(f"artifacts disagree on the input size: {sorted(sizes)}")
    if images:
        x = preprocess([str(p) for p in images], runners[0].manifest.preprocessing)
    else:
        x = random_inputs(batch, sizes.pop(), seed=0)
    tolerance = Tolerance(rtol=rtol, min_cosine=min_cosine)
    reference = runners[0].infer(x)
    reports = []
    for runner in runners[1:]:
        report = compare_outputs([reference], [runner.infer(x)], [len(x)], tolerance)
        reports.append((runner.describe(), report))
    for runner in runners:
        runner.close()
    if json_out:
        typer.echo(json.dumps({name: r.to_dict() for name, r in reports}, indent=2))
    else:
        first = runners[0]
        typer.echo(
            f"reference: {first.describe()} [{first.manifest.precision}]  ({len(x)} inputs, "
            f"{'images' if images else 'random'})"
        )
        for (name, r), runner in zip(reports, runners[1:], strict=True):
            typer.echo(f"  {'PASS' if r.passed else 'FAIL'}  {name} [{runner.manifest.precision}]: {r.describe()}")
    if not all(r.passed for _, r in reports):
        raise typer.Exit(1)


@app.command()
def benchmark(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts to time side by side (ratios vs the first).")],
    backend: Annotated[str | None, typer.Option(help="Force a backend for every artifact.")] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes, e.g. 1,8,32.")] = "1",
    warmup: Annotated[int, typer.Option(help="Untimed rounds per batch size.")] = 3,
    iters: Annotated[int, typer.Option(help="Timed rounds per batch size.")] = 20,
    seconds: Annotated[float | None, typer.Option(help="Time per batch size instead of --iters.")] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads (0: default).")] = 0,
    no_rewrite: Annotated[bool, typer.Option("--no-rewrite", help="Checkpoints run the reference model.")] = False,
    img_size: Annotated[int | None, typer.Option(help="Input size for ACmix-ResNet checkpoints.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write results as CSV.")] = None,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot.")] = None,
    concurrency: Annotated[
        int, typer.Option(help="Also run N client threads: plain vs micro-batched predictor (0: off).")
    ] = 0,
    requests: Annotated[int, typer.Option(help="Requests per client thread with --concurrency.")] = 20,
    force: Annotated[bool, typer.Option("--force", help="Overwrite output files.")] = False,
) -> None:
    """Latency percentiles and throughput per batch size, artifacts interleaved round by round."""
    from acmix_deploy.fileio import atomic_output, atomic_write_text, check_writable
    from acmix_deploy.profiling.benchmark import benchmark as run_benchmark
    from acmix_deploy.profiling.benchmark import plot
    from acmix_deploy.runtimes import open_runner

    batches = _csv_ints(batch, "--batch")
    if warmup < 0 or iters < 1 or (seconds is not None and seconds <= 0):
        raise fail("--warmup must be >= 0, --iters >= 1 and --seconds > 0", 2)
    for out in (json_file, csv_file, plot_file):
        if out is not None:
            check_writable(out, force=force)
    for path in artifacts:
        if not path.exists():
            raise fail(f"{path}: no such file")
    if concurrency < 0 or requests < 1:
        raise fail("--concurrency must be >= 0 and --requests >= 1", 2)
    if threads < 0:
        raise fail(f"--threads must be >= 0, got {threads}", 2)
    _check_backend(backend)
    size = _shared_img_size(artifacts, backend, img_size)
    runners = [open_runner(p, backend, **_runner_options(threads, no_rewrite, size, backend, p)) for p in artifacts]
    concurrent = []
    try:
        result = run_benchmark(runners, batches=batches, warmup=warmup, iterations=iters, seconds=seconds)
        if concurrency:
            from acmix_deploy import Predictor
            from acmix_deploy.profiling.benchmark import concurrency_benchmark

            for runner in runners:
                concurrent.append(
                    concurrency_benchmark(Predictor(runner), threads=concurrency, requests_per_thread=requests)
                )
    finally:
        for runner in runners:
            runner.close()
    typer.echo(result.table())
    for entry in concurrent:
        typer.echo(entry.describe())
    if concurrent:
        result.settings["concurrency"] = [c.to_dict() for c in concurrent]
    if json_file:
        atomic_write_text(json_file, result.to_json() + "\n", force=force)
    if csv_file:
        atomic_write_text(csv_file, result.to_csv(), force=force)
    if plot_file:
        with atomic_output(plot_file, force=force) as tmp:
            plot(result, tmp.with_suffix(".png"))
            tmp.with_suffix(".png").replace(tmp)


@app.command()
def profile(
    artifact: Annotated[Path, typer.Argument(help="An ONNX model exported by acmix-deploy.")],
    iters: Annotated[int, typer.Option(help="Profiled inferences.")] = 10,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 1,
    top: Annotated[int, typer.Option(help="Kernels in the top-N table.")] = 15,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the profile as JSON.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the JSON file.")] = False,
) -> None:
    """Per-layer time folded onto ACmix blocks: attention vs convolution vs projection vs MLP/norm."""
    from acmix_deploy.fileio import atomic_write_text, check_writable
    from acmix_deploy.profiling.layers import profile_onnx
    from acmix_deploy.runtimes import open_runner

    if iters < 1 or batch < 1 or top < 1:
        raise fail("--iters, --batch and --top must be >= 1", 2)
    if not artifact.exists():
        raise fail(f"{artifact}: no such file")
    if artifact.suffix != ".onnx":
        raise fail("profile reads ONNX models (TensorRT layer times arrive with the TensorRT runtime)", 2)
    if json_file:
        check_writable(json_file, force=force)
    with open_runner(artifact) as runner:
        manifest = runner.manifest
    result = profile_onnx(artifact, manifest, iterations=iters, batch=batch)
    typer.echo(result.table(top))
    if json_file:
        atomic_write_text(json_file, json.dumps(result.to_dict(), indent=2) + "\n", force=force)


@app.command()
def triton(
    artifacts: Annotated[list[Path], typer.Argument(help="ONNX models or TensorRT plans to serve.")],
    repo: Annotated[Path, typer.Option("-o", "--output", help="Model repository directory.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: each artifact's stem).")] = None,
    max_batch: Annotated[int | None, typer.Option(help="max_batch_size (default: the artifact's limit).")] = None,
    preferred_batch: Annotated[str, typer.Option(help="Preferred dynamic batch sizes, e.g. 4,8.")] = "4,8",
    max_queue_delay_us: Annotated[int, typer.Option(help="Dynamic batcher queue delay (microseconds).")] = 100,
    instances: Annotated[int, typer.Option(help="Model instances.")] = 1,
    kind: Annotated[str, typer.Option(help="cpu | gpu")] = "cpu",
    ort_tensorrt: Annotated[bool, typer.Option("--ort-tensorrt", help="ONNX: ORT's TensorRT accelerator.")] = False,
) -> None:
    """Write (or add versions to) a Triton Inference Server model repository."""
    from acmix_deploy.exporters.triton import write_triton_repository

    preferred = _csv_ints(preferred_batch, "--preferred-batch")
    if max_batch is not None and max_batch < 1:
        raise fail(f"--max-batch must be >= 1, got {max_batch}", 2)
    if kind not in ("cpu", "gpu"):
        raise fail(f"--kind must be cpu or gpu, got {kind!r}", 2)
    if instances < 1 or max_queue_delay_us < 0:
        raise fail("--instances must be >= 1 and --max-queue-delay-us >= 0", 2)
    for artifact in artifacts:
        report = write_triton_repository(
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
        typer.echo(f"{artifact} -> {report.model_dir}/{report.version} ({report.platform})")
    typer.echo(f"serve: tritonserver --model-repository={repo.resolve()}")


@app.command()
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
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing engine.")] = False,
) -> None:
    """Build a TensorRT engine (plain plan + JSON sidecar) from an exported ONNX model."""
    if fp16 and int8:
        raise fail("choose one of --fp16 and --int8", 2)
    if not onnx_model.is_file():
        raise fail(f"{onnx_model}: no such file")
    if workspace <= 0:
        raise fail(f"--workspace must be > 0, got {workspace}", 2)
    from acmix_deploy.exporters.tensorrt import build_engine

    report = build_engine(
        onnx_model,
        output or onnx_model.with_suffix(".engine"),
        precision="int8" if int8 else "fp16" if fp16 else "fp32",
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_gb=workspace,
        timing_cache=timing_cache,
        inspector_json=layers,
        force=force,
        progress=lambda stage, message: typer.echo(f"{stage:<9} {message}"),
    )
    typer.echo(json.dumps(report.to_dict(), indent=2, default=str))


@app.command()
def evaluate(
    artifacts: Annotated[
        list[Path], typer.Argument(help="Checkpoint, ONNX model or engine; several give one comparison table.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Image folder: one sub-folder per class (ImageNet val layout).")],
    top_k: Annotated[str, typer.Option("--top-k", help="Comma-separated k values, e.g. 1,5.")] = "1,5",
    backend: Annotated[str | None, typer.Option(help="torch | onnxruntime | tensorrt (default: by suffix).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per inference call.")] = 32,
    img_size: Annotated[int | None, typer.Option(help="Input size for ACmix-ResNet checkpoints (default 224).")] = None,
    classes: Annotated[Path | None, typer.Option(help="Labels file naming the model's classes in index order.")] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON (a list of reports for several artifacts).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the JSON file.")] = False,
) -> None:
    """Top-k accuracy of any artifact on an image folder, with the artifact's own preprocessing.

    With several artifacts (say the fp32, fp16 and int8 exports), each is evaluated on the same
    images and one table compares accuracy, top-1 agreement with the first, and throughput.
    """
    from acmix_deploy.evaluate import evaluate as run_evaluate
    from acmix_deploy.evaluate import format_comparison, format_report
    from acmix_deploy.fileio import atomic_write_text, check_writable

    ks = _csv_ints(top_k, "--top-k")
    _check_backend(backend)
    if batch_size < 1:
        raise fail(f"--batch-size must be >= 1, got {batch_size}", 2)
    for artifact in artifacts:
        if not artifact.exists():
            raise fail(f"{artifact}: no such file")
    if json_file:
        check_writable(json_file, force=force)
    from acmix_deploy.runtimes import backend_for

    if classes is None and len(artifacts) > 1:
        classes = _shared_class_names(artifacts, data)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():  # a carriage-return counter; logs and pipes get the result only
            typer.echo(f"\r{done}/{total} images", nl=done >= total, err=True)

    reports, precisions = [], []
    for artifact in artifacts:
        torch_backend = (backend or backend_for(artifact)) == "torch"
        opts = {"img_size": img_size} if img_size and torch_backend else {}
        report = run_evaluate(
            artifact,
            data,
            top_k=tuple(ks),
            backend=backend,
            batch_size=batch_size,
            class_names=classes,
            progress=progress,
            **opts,
        )
        reports.append(report)
        recorded = _recorded_precision(artifact)
        precisions.append(recorded.split(";")[0].removeprefix("precision ") if recorded else "")
        if len(artifacts) == 1:
            typer.echo(format_report(report))
            if recorded:
                typer.echo(f"manifest    {recorded}")
    if len(artifacts) > 1:
        typer.echo(format_comparison(reports, precisions))
    if json_file:
        data_out = [r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict()
        atomic_write_text(json_file, json.dumps(data_out, indent=2, default=str) + "\n", force=force)


def main() -> None:
    """Console-script entry point: run the app, mapping our errors to one-line messages."""
    from acmix_deploy.errors import AcmixDeployError

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except AcmixDeployError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Typer's usage errors (click-style exceptions, possibly vendored) know how to print themselves.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        if _state["debug"]:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
