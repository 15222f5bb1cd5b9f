"""Accuracy of any artifact (checkpoint, ONNX, engine) on an image folder, one sub-folder per class.

The folder layout (``acmix_deploy.imagefolder``) is ImageNet's validation layout: folders named by
WordNet id (``n01440764``) or class name, any subset of the classes, or anything with a class map
(``acmix_deploy.classmap`` matches folders to classes). Images go through the artifact's own
preprocessing (its manifest) and backend, exactly as :class:`acmix_deploy.Predictor` serves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classmap import ClassMatch, read_class_map
from .imagefolder import EvaluationError, ImageFolderIndex, index_for_model, index_image_folder
from .labels import read_labels
from .predictor import Predictor, softmax

Progress = Callable[[int, int], None]


@dataclass
class EvalReport:
    """What :func:`evaluate` measured. Accuracies are fractions in [0, 1]."""

    artifact: str
    backend: str
    data_dir: str
    classes: list[str]
    num_images: int
    top_k: tuple[int, ...]
    correct: dict[int, int]  # k -> images whose label is among the top k
    per_class_total: list[int]  # images per class, in class index order
    per_class_correct: dict[int, list[int]]  # k -> per-class counts of top-k hits
    seconds: float
    notes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list, repr=False)  # every image, in evaluation order
    predictions: list[int] = field(default_factory=list, repr=False)  # top-1 class index per image
    labels: list[int] = field(default_factory=list, repr=False)  # true class index per image
    match: ClassMatch | None = field(default=None, repr=False)  # which folder holds which class

    @property
    def listed(self) -> list[int]:
        """The classes the data stands for: those with a folder when the folders are a subset, else all."""
        return self.match.listed if self.match is not None else list(range(len(self.classes)))

    def shown(self, index: int) -> str:
        """How reports name class ``index`` (with its WordNet id when its folder was named by one)."""
        return self.match.shown(index) if self.match is not None else self.classes[index]

    @property
    def accuracy(self) -> dict[int, float]:
        """Top-k accuracy per k, as a fraction."""
        return {k: self.correct[k] / self.num_images for k in self.top_k}

    @property
    def top1(self) -> float:
        """Top-1 accuracy as a fraction (1 is always evaluated)."""
        return self.correct[1] / self.num_images

    def per_class_accuracy(self, k: int = 1) -> list[float | None]:
        """Top-k accuracy of each class (``None`` for a class with no images)."""
        return [c / t if t else None for c, t in zip(self.per_class_correct[k], self.per_class_total, strict=True)]

    def to_dict(self) -> dict:
        """Plain JSON-ready data (accuracies in percent; per-image results left out)."""
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "data_dir": self.data_dir,
            "num_images": self.num_images,
            "num_classes": len(self.classes),
            "top_k": list(self.top_k),
            "accuracy_percent": {f"top{k}": round(100.0 * v, 4) for k, v in self.accuracy.items()},
            "correct": {f"top{k}": v for k, v in self.correct.items()},
            "per_class": [self._class_dict(i) for i in self.listed],
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }

    def _class_dict(self, i: int) -> dict:
        entry = {"class": self.classes[i], "index": i, "images": self.per_class_total[i]}
        if self.match is not None and (folder := self.match.folder(i)) is not None:
            entry |= {"folder": folder} | ({"wnid": wnid} if (wnid := self.match.wnid(i)) else {})
        return entry | {f"top{k}_correct": self.per_class_correct[k][i] for k in self.top_k}


def evaluate(
    artifact: str | Path | Predictor,
    data_dir: str | Path,
    *,
    top_k: Sequence[int] = (1, 5),
    backend: str | None = None,
    batch_size: int = 32,
    class_names: Sequence[str] | str | Path | None = None,
    class_map: Mapping[str, int] | str | Path | None = None,
    shared_labels: Sequence[str] | None = None,
    progress: Progress | None = None,
    **runner_opts,
) -> EvalReport:
    """Top-k accuracy of ``artifact`` on the class-per-folder images under ``data_dir``.

    Args:
        artifact: a checkpoint, ONNX file or engine (opened with :meth:`Predictor.load`), or an open
            :class:`Predictor` (left open).
        data_dir: ``data_dir/<class>/<image>``. Folders are matched to the model's classes by name
            (the manifest's class names; ImageNet-1k's for a 1000-class model without them) or, for
            ImageNet-1k, by WordNet id (``n01440764``), any subset of the classes; else, as many
            folders as classes are taken in sorted order (ImageFolder's rule). Rules:
            :func:`acmix_deploy.classmap.match_folders`.
        top_k: the k values to report; 1 is always included; k above the class count is dropped (noted).
        backend: force a backend (``torch``, ``onnxruntime``, ``tensorrt``); default: from the suffix.
        batch_size: images decoded, preprocessed and run per step.
        class_names: folder names in class index order (a list, or a labels file with one per line),
            for folders whose sorted order is not the model's class order.
        class_map: folder name -> class index (a mapping, or a file read by
            :func:`acmix_deploy.classmap.read_class_map`: JSON, ``name index`` lines, or one name
            per line), for any other layout; every folder must be in it.
        shared_labels: class names for an artifact whose manifest records none, lent by another
            artifact of one comparison (:func:`acmix_deploy.side_by_side.shared_class_names`) so
            both place the folders by the same names; ignored when the artifact records its own
            or has another class count.
        progress: ``callback(done, total)`` after each batch (and once with ``done=0``).
        **runner_opts: backend options (``img_size=64`` for an ACmix-ResNet checkpoint not at 224 px,
            ``threads``, ``device``, ``rewrite``, ...).

    Raises:
        EvaluationError: bad folder or class map, or folders that cannot be placed among the
            model's classes (the message names the first that match none).
        ImageError, RunnerError, CheckpointError: unreadable image or artifact.
    """
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    ks = sorted({1, *(int(k) for k in top_k)})
    if ks[0] < 1:
        raise EvaluationError(f"top_k values must be >= 1, got {list(top_k)}")
    names = read_labels(class_names) if isinstance(class_names, str | Path) else class_names
    mapping = read_class_map(class_map) if isinstance(class_map, str | Path) else class_map
    if names is not None and mapping is not None:
        raise EvaluationError("give either class_names or class_map, not both")
    index = index_image_folder(data_dir)  # cheap checks before loading the model

    owned = not isinstance(artifact, Predictor)
    predictor = Predictor.load(artifact, backend=backend, **runner_opts) if owned else artifact
    try:
        manifest = predictor.manifest
        labels = manifest.labels
        if labels is None and shared_labels is not None and len(shared_labels) == manifest.num_classes:
            labels = list(shared_labels)
        index = index_for_model(index, manifest.num_classes, labels=labels, class_names=names, class_map=mapping)
        return _run(predictor, index, ks, batch_size, progress)
    finally:
        if owned:
            predictor.close()


def _run(
    predictor: Predictor, index: ImageFolderIndex, ks: list[int], batch_size: int, progress: Progress | None
) -> EvalReport:
    num_classes = predictor.manifest.num_classes
    n_cls = len(index.classes)  # the model's classes: index_for_model placed the folders among them
    match = index.match
    total = len(index.samples)
    labels = np.fromiter((label for _, label in index.samples), dtype=np.int64, count=total)
    per_class_total = np.bincount(labels, minlength=n_cls).tolist()
    notes = [note] if match is not None and (note := match.note()) else []
    notes += [f"top-{k} dropped: the model has only {num_classes} classes" for k in ks if k > num_classes]
    ks = [k for k in ks if k <= num_classes]
    listed = match.listed if match is not None else range(n_cls)
    empty = [index.classes[i] for i in listed if per_class_total[i] == 0]
    if empty:
        notes.append(f"{len(empty)} class(es) without images: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}")
    hits = {k: np.zeros(total, dtype=bool) for k in ks}
    top1 = np.zeros(total, dtype=np.int64)
    kmax = max(ks)
    if progress:
        progress(0, total)
    t0 = time.perf_counter()
    for start in range(0, total, batch_size):
        chunk = index.samples[start : start + batch_size]
        probs = softmax(predictor.infer(predictor.preprocess([path for path, _ in chunk])))
        # The same ranking as Predictor.predict: stable argsort of the probabilities.
        order = np.argsort(-probs, axis=1, kind="stable")[:, :kmax]
        truth = labels[start : start + len(chunk), None]
        top1[start : start + len(chunk)] = order[:, 0]
        for k in ks:
            hits[k][start : start + len(chunk)] = (order[:, :k] == truth).any(axis=1)
        if progress:
            progress(start + len(chunk), total)
    seconds = time.perf_counter() - t0

    runner = predictor.runner
    return EvalReport(
        artifact=str(runner.path),
        backend=runner.backend,
        data_dir=str(index.root),
        classes=list(index.classes),
        num_images=total,
        top_k=tuple(ks),
        correct={k: int(hits[k].sum()) for k in ks},
        per_class_total=per_class_total,
        per_class_correct={k: np.bincount(labels, weights=hits[k], minlength=n_cls).astype(int).tolist() for k in ks},
        seconds=seconds,
        notes=notes,
        paths=[str(path) for path, _ in index.samples],
        predictions=top1.tolist(),
        labels=labels.tolist(),
        match=match,
    )


def format_report(report: EvalReport, *, max_classes: int = 20) -> str:
    """A plain-text summary: accuracies, counts, time, and per-class top-1 (all classes when at most
    ``max_classes``, else the five worst), classes named as :meth:`EvalReport.shown` does."""
    n = report.num_images
    rate = n / report.seconds if report.seconds > 0 else float("inf")
    listed = report.listed
    held = f"{len(listed)} of the model's {len(report.classes)}" if len(listed) < len(report.classes) else len(listed)
    lines = [
        f"artifact    {report.artifact}  [{report.backend}]",
        f"data        {report.data_dir}  ({n} images, {held} classes)",
    ]
    for k in report.top_k:
        lines.append(f"{f'top-{k}':<12}{100.0 * report.correct[k] / n:6.2f}%  ({report.correct[k]}/{n})")
    lines.append(f"time        {report.seconds:.1f} s  ({rate:.1f} images/s)")
    rows = [
        (i, report.shown(i), report.per_class_correct[1][i], report.per_class_total[i])
        for i in listed
        if report.per_class_total[i]
    ]
    if len(listed) > max_classes:
        rows = sorted(rows, key=lambda r: (r[2] / r[3], r[0]))[:5]
        lines.append("worst classes (top-1):")
    else:
        lines.append("per class (top-1):")
    width = max((len(r[1]) for r in rows), default=5)
    lines += [f"  {name:<{width}}  {100.0 * c / t:6.2f}%  ({c}/{t})" for _, name, c, t in rows]
    lines += [f"note        {note}" for note in report.notes]
    return "\n".join(lines)


def format_comparison(reports: Sequence[EvalReport], precisions: Sequence[str] | None = None) -> str:
    """One table for several artifacts evaluated on the same images: accuracy, agreement, speed.

    Agreement is the share of images whose top-1 class equals the first artifact's (the reference,
    usually the fp32 export): a reduced-precision model can keep its accuracy while flipping
    individual answers, and this is where that shows.

    Raises:
        EvaluationError: the reports are not over the same images in the same order.
    """
    if not reports:
        raise EvaluationError("no reports to compare")
    first = reports[0]
    for report in reports[1:]:
        if sorted(report.paths) != sorted(first.paths):
            raise EvaluationError(f"{report.artifact} was evaluated on other images than {first.artifact}")
    reference = dict(zip(first.paths, first.predictions, strict=True))  # artifacts may order images differently
    ks = [k for k in first.top_k if all(k in r.top_k for r in reports)]
    names = [Path(r.artifact).name for r in reports]
    width = max(len("artifact"), *(len(n) for n in names))
    header = f"{'artifact':<{width}}  {'precision':<9}" + "".join(f"{f'top-{k}':>9}" for k in ks)
    header += f"{'agree':>9}{'images/s':>10}"
    lines = [f"{first.num_images} images, {len(first.listed)} classes; agree = same top-1 as {names[0]}", header]
    for i, (name, report) in enumerate(zip(names, reports, strict=True)):
        same = sum(reference[path] == pred for path, pred in zip(report.paths, report.predictions, strict=True))
        precision = precisions[i] if precisions else ""
        rate = report.num_images / report.seconds if report.seconds > 0 else float("inf")
        cells = "".join(f"{100.0 * report.accuracy[k]:8.2f}%" for k in ks)
        lines.append(f"{name:<{width}}  {precision:<9}{cells}{100.0 * same / first.num_images:8.2f}%{rate:10.1f}")
    return "\n".join(lines)
