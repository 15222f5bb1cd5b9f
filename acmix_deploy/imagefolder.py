"""Image folders with one sub-folder per class (ImageNet's validation layout), read once for everyone.

The layout is the one torchvision's ``ImageFolder`` reads: ``root/<class>/<image>``, class index =
position of the folder name in sorted order, images
found recursively under each class folder with the usual extensions. ``evaluate``, the precision
checks (``export --eval-data``) and the int8 calibration reader all index folders here, so they
agree on what a folder holds; :func:`index_for_model` places the folders among a model's classes
(WordNet ids, class names, a class map: :mod:`acmix_deploy.classmap` decides).

Differences from ``ImageFolder``: folders and files whose names start with ``.`` are skipped
(``.ipynb_checkpoints`` and the like), and a class folder without images is allowed (its class
keeps its index and is reported with zero images). Symbolic links to folders are followed, but
each real folder is read once per index: a link back up the tree (a loop, which made the walk
inflate counts or never end) or to a folder already read is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .classmap import ClassMatch, EvaluationError, match_folders

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

__all__ = ["EvaluationError", "ImageFolderIndex", "images_under", "index_for_model", "index_image_folder"]


@dataclass
class ImageFolderIndex:
    """The images of a class-per-folder tree: ``samples[i] = (path, class index)``.

    ``classes`` are the folder names in sorted order; for an index placed
    among a model's classes (:func:`index_for_model`), every class of the model, and ``match``
    says which folder holds which.
    """

    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    match: ClassMatch | None = None


def index_image_folder(root: str | Path) -> ImageFolderIndex:
    """List the images under ``root/<class>/``; class index = sorted folder order.

    Placing folders among a model's classes (class names, WordNet ids, class maps) is
    :func:`index_for_model`'s job (:mod:`acmix_deploy.classmap`).

    Raises:
        EvaluationError: ``root`` missing or not a directory, no class folders, or no images.
    """
    root = Path(root)
    if not root.exists():
        raise EvaluationError(f"{root}: no such directory")
    if not root.is_dir():
        raise EvaluationError(f"{root}: not a directory (expected one sub-folder per class)")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise EvaluationError(f"{root}: no class folders (expected {root}/<class>/<image> files)")
    samples: list[tuple[Path, int]] = []
    # The root and every class folder are known from the start: a link inside one class folder
    # back to the root or to another class would count that class's images twice, as this class.
    seen = {_identity(folder) for folder in [root, *(root / name for name in classes)]} - {None}
    for index, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            samples += [(path, index) for path in _walk(folder, seen)]
    if not samples:
        raise EvaluationError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")
    return ImageFolderIndex(root, classes, samples)


def index_for_model(
    data: str | Path | ImageFolderIndex,
    num_classes: int,
    *,
    labels: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    class_map: Mapping[str, int] | None = None,
) -> ImageFolderIndex:
    """The images under ``data`` labelled with a ``num_classes``-way model's class indices.

    Args:
        data: the root, or its plain :func:`index_image_folder` index (no ``class_names``), read
            before the model is loaded.
        num_classes: the model's class count.
        labels: the model's own class names (manifest ``labels``), if it records them.
        class_names: all the model's classes in index order, from the user.
        class_map: folder name -> class index, from the user (:func:`acmix_deploy.classmap.read_class_map`).

    Raises:
        EvaluationError: the folder is unusable, or its folders cannot be placed among the classes
            (see :func:`acmix_deploy.classmap.match_folders`).
    """
    index = data if isinstance(data, ImageFolderIndex) else index_image_folder(data)
    match = match_folders(
        index.classes, num_classes, labels=labels, class_names=class_names, class_map=class_map, root=index.root
    )
    place = [match.folders[name] for name in index.classes]
    # Class index order, each class's images in walk order: what indexing by class order gives.
    samples = sorted(((path, place[i]) for path, i in index.samples), key=lambda sample: sample[1])
    return ImageFolderIndex(index.root, list(match.classes), samples, match)


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:  # a dangling link or a folder we may not read: nothing to walk
        return None
    return info.st_dev, info.st_ino


def images_under(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursively), hidden files and folders skipped, in walk order.

    Linked folders are followed, each real folder once (symlink loops end).
    """
    return _walk(folder, {_identity(folder)} - {None})


def _walk(folder: Path, seen: set) -> list[Path]:
    """Images below ``folder``, never entering a folder whose (device, inode) is in ``seen`` (updated)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            identity = _identity(os.path.join(dirpath, name))
            if identity is not None and identity not in seen:
                seen.add(identity)
                keep.append(name)
        dirnames[:] = keep
        found += [
            Path(dirpath) / name
            for name in sorted(filenames)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found
