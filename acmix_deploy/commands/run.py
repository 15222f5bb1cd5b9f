"""Running artifacts: ``predict``, ``verify`` (artifacts against each other), ``evaluate`` (accuracy)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    EXIT_FAILURE,
    BackendOption,
    ImgSize,
    JsonFlag,
    Labels,
    NoRewrite,
    SaveJson,
    UsageError,
    at_least,
    check_writable,
    deprecated,
    ints,
    require_files,
    show,
)


def predict(
    artifact: Annotated[Path, typer.Argument(help="Checkpoint, ONNX model or engine.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes per image.")] = 5,
    backend: BackendOption = None,
    labels: Labels = None,
    json_out: JsonFlag = False,
) -> None:
    """Classify images with any artifact, using the preprocessing recorded in its manifest.

    Prints what ran (artifact, backend, precision, input size) and each image's time, preprocessing
    included, after one untimed warm-up call (the first call pays for allocations and kernel choice).
    """
    import time

    from acmix_deploy import Predictor

    at_least(1, top_k=top_k)
    require_files([artifact])
    with Predictor.load(artifact, backend=backend, labels=labels) as predictor:
        m = predictor.manifest
        header = (
            f"{predictor.runner.describe()} [{m.precision}], {m.img_size} px, {m.num_classes} classes; "
            f"top-{top_k} per image, time per image (batch 1, preprocessing included, after 1 warm-up)"
        )
        if images:
            predictor.predict([str(images[0])], top_k=top_k)  # warm-up, untimed
        results, times = [], []
        for img in images:  # one at a time: each image's own time
            start = time.perf_counter()
            results += predictor.predict([str(img)], top_k=top_k)
            times.append(1e3 * (time.perf_counter() - start))
    payload = [
        {"image": str(img), "ms": round(ms, 3), "predictions": [p.__dict__ for p in preds]}
        for img, preds, ms in zip(images, results, times, strict=True)
    ]
    lines = [header]
    for img, preds, ms in zip(images, results, times, strict=True):
        lines += [f"{img}  ({ms:.1f} ms)", *(f"  {p.probability:7.2%}  {p.index:>5}  {p.label}" for p in preds)]
    show(payload, "\n".join(lines), json_out)


def verify(
    artifacts: Annotated[list[Path], typer.Argument(help="Two or more artifacts; the first is the reference.")],
    batch: Annotated[int, typer.Option(help="Random inputs per comparison.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--image", metavar="FILE", help="Images (repeatable), preprocessed per the first artifact's manifest."
        ),
    ] = None,
    load_inputs: Annotated[
        Path | None, typer.Option("--load-inputs", help="Use the inputs saved by --save-inputs (.npz): same numbers.")
    ] = None,
    save_inputs: Annotated[Path | None, typer.Option("--save-inputs", help="Write the inputs to this .npz.")] = None,
    save_outputs: Annotated[
        Path | None, typer.Option("--save-outputs", help="Write each artifact's outputs to DIR/<artifact>.npz.")
    ] = None,
    max_diff: Annotated[
        float | None,
        typer.Option(help="Largest |diff| allowed, in units of max(1, max|reference|) (default: by precision)."),
    ] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", hidden=True)] = None,
    min_cosine: Annotated[
        float | None, typer.Option(help="Minimum cosine similarity per sample (default: by precision).")
    ] = None,
    min_agreement: Annotated[
        float | None, typer.Option(help="Minimum top-1 agreement, 0..1 (default: by precision).")
    ] = None,
    no_rewrite: NoRewrite = False,
    img_size: ImgSize = None,
    json_out: JsonFlag = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --save-inputs / --save-outputs files.")] = False,
) -> None:
    """Run the same inputs through every artifact and compare each with the first (like polygraphy run).

    Each artifact is judged with its precision's tolerance (fp16 and int8 variants are not held to
    fp32 bounds; the bounds they were proven to at export count); --max-diff, --min-cosine and
    --min-agreement override them.
    """
    from acmix_deploy.verify import format_verify
    from acmix_deploy.verify import verify as run_verify

    max_diff = deprecated(rtol, "--rtol", "--max-diff", max_diff)
    if len(artifacts) < 2:
        raise UsageError("verify needs at least two artifacts")
    if images and load_inputs is not None:
        raise UsageError("--image and --load-inputs exclude each other")
    at_least(1, batch=batch)
    if min_agreement is not None and not 0 <= min_agreement <= 1:  # False for NaN
        raise UsageError(f"--min-agreement must be in 0..1, got {min_agreement}")
    require_files(artifacts)
    given = {"rtol": max_diff, "min_cosine": min_cosine, "min_top1_agreement": min_agreement}
    report = run_verify(
        artifacts,
        batch=batch,
        seed=seed,
        images=images,
        load_inputs_from=load_inputs,
        tolerance={k: v for k, v in given.items() if v is not None},
        rewrite=not no_rewrite,
        img_size=img_size,
        save_inputs=save_inputs,
        save_outputs=save_outputs,
        force=force,
    )
    show(report.to_dict(), format_verify(report), json_out)
    if not report.passed:
        raise typer.Exit(EXIT_FAILURE)


def evaluate(
    artifacts: Annotated[
        list[Path], typer.Argument(help="Checkpoint, ONNX model or engine; several give one comparison table.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Image folder: one sub-folder per class (ImageNet val layout).")],
    top_k: Annotated[str, typer.Option("--top-k", help="Comma-separated k values, e.g. 1,5.")] = "1,5",
    backend: BackendOption = None,
    batch: Annotated[int, typer.Option(help="Images per inference call.")] = 32,
    batch_size: Annotated[int | None, typer.Option("--batch-size", hidden=True)] = None,
    img_size: ImgSize = None,
    labels: Annotated[Path | None, typer.Option(help="Class names in index order, one per line.")] = None,
    classes: Annotated[Path | None, typer.Option("--classes", hidden=True)] = None,
    class_map: Annotated[
        Path | None,
        typer.Option(
            "--class-map",
            help="Folder name -> class index: JSON {name: index}, 'name index' lines, or one name per line.",
        ),
    ] = None,
    json_out: JsonFlag = False,
    save_json: SaveJson = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --save-json file.")] = False,
) -> None:
    """Top-k accuracy of any artifact on an image folder, with the artifact's own preprocessing.

    Folders named by WordNet id (n01440764, ImageNet's layout) or by class name match the model's
    classes, any subset of them; --class-map places any other folders.

    With several artifacts (say the fp32, fp16 and int8 exports), each is evaluated on the same
    images and one table compares accuracy, top-1 agreement with the first, and throughput.
    """
    from acmix_deploy import Predictor
    from acmix_deploy.evaluate import evaluate as run_evaluate
    from acmix_deploy.evaluate import format_comparison, format_report
    from acmix_deploy.runtimes import open_runner
    from acmix_deploy.side_by_side import recorded_precision, runner_options, shared_class_names

    ks = ints(top_k, "--top-k")
    batch = deprecated(batch_size, "--batch-size", "--batch", batch)
    labels = deprecated(classes, "--classes", "--labels", labels)
    at_least(1, batch=batch)
    require_files(artifacts)
    check_writable([save_json], force)
    if labels is not None and class_map is not None:
        raise UsageError("--labels and --class-map exclude each other")
    shared = labels is None and class_map is None and len(artifacts) > 1

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():  # a carriage-return counter; logs and pipes get the result only
            typer.echo(f"\r{done}/{total} images", nl=done >= total, err=True)

    # Each manifest is read once, by its runner: the shared class names and the precision records reuse it
    # (a closed runner keeps its manifest). Runners load when first used: with shared names all of them
    # first (their manifests name the classes); without, one model is loaded at a time.
    runners = [open_runner(a, backend, **runner_options(a, backend, img_size=img_size)) for a in artifacts]
    reports = []
    with ExitStack() as stack:
        for runner in runners:
            stack.callback(runner.close)
        manifests = [r.manifest for r in runners] if shared else None
        names = shared_class_names(artifacts, data, manifests) if shared else None  # lent to those naming none
        for runner in runners:
            reports.append(
                run_evaluate(
                    Predictor(runner),  # loads it, unless its manifest was read above
                    data,
                    top_k=tuple(ks),
                    batch_size=batch,
                    class_names=labels,
                    class_map=class_map,
                    shared_labels=names,
                    progress=progress,
                )
            )
            runner.close()
    recorded = [recorded_precision(a, r.manifest) for a, r in zip(artifacts, runners, strict=True)]
    if len(reports) > 1:
        text = format_comparison(reports, [r.precision for r in recorded])
    else:
        text = format_report(reports[0]) + (f"\nmanifest    {recorded[0].describe()}" if recorded[0].precision else "")
    payload = [r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict()
    show(payload, text, json_out, save_json, force)
