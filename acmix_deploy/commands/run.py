"""Running artifacts: ``predict``, ``verify`` (artifacts against each other), ``evaluate`` (accuracy)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from acmix_deploy.errors import AcmixDeployError

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
    images: Annotated[
        list[Path] | None, typer.Option("--image", help="Use these images instead of random inputs.")
    ] = None,
    max_diff: Annotated[float, typer.Option(help="Largest |diff| allowed, in units of max(1, max|reference|).")] = 1e-4,
    rtol: Annotated[float | None, typer.Option("--rtol", hidden=True)] = None,
    min_cosine: Annotated[float, typer.Option(help="Minimum cosine similarity per sample.")] = 0.99999,
    no_rewrite: NoRewrite = False,
    img_size: ImgSize = None,
    json_out: JsonFlag = False,
) -> None:
    """Run the same inputs through every artifact and compare each with the first (like polygraphy run)."""
    from acmix_deploy.parity import Tolerance, compare_outputs, random_inputs
    from acmix_deploy.preprocess import preprocess
    from acmix_deploy.runtimes import open_runner
    from acmix_deploy.side_by_side import runner_options, shared_img_size

    max_diff = deprecated(rtol, "--rtol", "--max-diff", max_diff)
    if len(artifacts) < 2:
        raise UsageError("verify needs at least two artifacts")
    at_least(1, batch=batch)
    require_files(artifacts)
    size = shared_img_size(artifacts, None, img_size)
    with ExitStack() as stack:  # every runner is closed, also when one fails to load or run
        opened = [open_runner(p, **runner_options(p, rewrite=not no_rewrite, img_size=size)) for p in artifacts]
        runners = [stack.enter_context(runner) for runner in opened]
        sizes = {r.manifest.img_size for r in runners}
        if len(sizes) != 1:
            raise AcmixDeployError(f"artifacts disagree on the input size: {sorted(sizes)}")
        pre = runners[0].manifest.preprocessing
        x = preprocess([str(p) for p in images], pre) if images else random_inputs(batch, sizes.pop(), seed=0)
        described = {"inputs": f"{len(x)} images (resize {pre.resize}, crop {pre.crop}, {pre.interpolation})"}
        tolerance = Tolerance(rtol=max_diff, min_cosine=min_cosine)
        reference = runners[0].infer(x)
        reports = [
            (r, compare_outputs([reference], [r.infer(x)], [len(x)], tolerance, **(described if images else {})))
            for r in runners[1:]
        ]
    first = runners[0]
    source = "images" if images else "random"
    lines = [f"reference: {first.describe()} [{first.manifest.precision}]  ({len(x)} inputs, {source})"]
    for runner, r in reports:
        lines.append(
            f"  {'PASS' if r.passed else 'FAIL'}  {runner.describe()} [{runner.manifest.precision}]: {r.describe()}"
        )
    show({runner.describe(): r.to_dict() for runner, r in reports}, "\n".join(lines), json_out)
    if not all(r.passed for _, r in reports):
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
    from acmix_deploy.evaluate import evaluate as run_evaluate
    from acmix_deploy.evaluate import format_comparison, format_report
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
    names = shared_class_names(artifacts, data) if shared else labels

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():  # a carriage-return counter; logs and pipes get the result only
            typer.echo(f"\r{done}/{total} images", nl=done >= total, err=True)

    reports = [
        run_evaluate(
            a,
            data,
            top_k=tuple(ks),
            backend=backend,
            batch_size=batch,
            class_names=names,
            class_map=class_map,
            progress=progress,
            **runner_options(a, backend, img_size=img_size),
        )
        for a in artifacts
    ]
    recorded = [recorded_precision(a) for a in artifacts]
    if len(reports) > 1:
        text = format_comparison(reports, [r.precision for r in recorded])
    else:
        text = format_report(reports[0]) + (f"\nmanifest    {recorded[0].describe()}" if recorded[0].precision else "")
    payload = [r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict()
    show(payload, text, json_out, save_json, force)
