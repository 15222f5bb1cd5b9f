"""Class names: ImageNet-1k bundled, or a labels file (one name per line) given by the user.

The bundled names are the standard ImageNet-1k class names in index order (the WordNet synset
words used by torchvision's model metadata), one per line in ``data/imagenet1k_labels.txt``.
Next to them, ``data/imagenet1k_wnids.txt`` holds each class's WordNet id (``n01440764``...), the
folder names of ImageNet's own train/val layout: class ``i`` is the ``i``-th id in sorted order,
the index order every ImageNet-1k model is trained with, so line ``i`` of both files is one class.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import AcmixDeployError
from .fileio import read_bounded_text
from .text import is_printable, safe_text

MAX_LABEL_CHARS = 256  # one class name
MAX_LABELS_FILE_BYTES = 16 << 20  # a labels file (ImageNet-21k's names are ~0.5 MB)


@lru_cache(maxsize=1)
def imagenet1k() -> tuple[str, ...]:
    """The 1000 bundled ImageNet-1k class names, in class index order."""
    return _bundled("imagenet1k_labels.txt")


@lru_cache(maxsize=1)
def imagenet1k_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids (``n01440764`` = tench, ...), in class index order."""
    return _bundled("imagenet1k_wnids.txt")


def _bundled(name: str) -> tuple[str, ...]:
    text = resources.files("acmix_deploy").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def read_labels(path: str | Path) -> list[str]:
    """The class names in a labels file (one per line, blank lines skipped), each checked as it is read.

    Raises:
        AcmixDeployError: missing, too large or non-UTF-8 file, or a line that is not a usable class
            name (see :func:`name_problem`); the message names the line. The count is checked
            against a model where the names are used.
    """
    path = Path(path)
    if not path.is_file():
        raise AcmixDeployError(f"{safe_text(path)}: labels file not found")
    text = read_bounded_text(path, "labels file", MAX_LABELS_FILE_BYTES, shown=safe_text(path))
    names = []
    # split("\n"), not splitlines(): a \x1c or \u2028 inside a name is refused below, not a line break.
    for number, line in enumerate(text.split("\n"), 1):
        name = line.strip(" \t\r")
        if not name:
            continue
        problem = name_problem(name)
        if problem:
            raise AcmixDeployError(f"{safe_text(path)}: line {number}: {problem}")
        names.append(name)
    return names


def name_problem(name: object) -> str | None:
    """Why ``name`` is not usable as a class name, or None.

    A class name becomes a folder name (``evaluate`` matches image folders by name), a line of
    Triton's ``labels.txt`` and terminal output: no separators, no ``.``/``..``, no control or
    invisible characters, no surrounding blanks, at most :data:`MAX_LABEL_CHARS` characters.
    """
    if not isinstance(name, str):
        return f"class names must be strings, not {type(name).__name__}"
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        return f"class names must be usable as folder names; not {name!r}"
    if not is_printable(name):
        return f"class name {name!r} holds control or invisible characters"
    if name != name.strip():
        return f"class name {name!r} starts or ends with blanks"
    if len(name) > MAX_LABEL_CHARS:
        return f"class name of {len(name)} characters (at most {MAX_LABEL_CHARS})"
    return None


def label_problem(labels: object, num_classes: int) -> str | None:
    """What makes ``labels`` unusable as the class names of a ``num_classes``-way model, or None when they are fine.

    Class names must be a list of non-blank strings usable as folder names (``evaluate`` matches
    image folders by name; Triton writes them one per line), one per output.
    """
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return "labels must be a list of strings"
    for name in labels:
        if (problem := name_problem(name)) is not None:
            return f"labels: {problem}"
    if len(labels) != num_classes:
        return f"{len(labels)} labels for {num_classes} classes"
    return None


def labels_for(num_classes: int, labels: list[str] | None = None) -> list[str]:
    """Names for ``num_classes`` outputs: the given list, ImageNet-1k for 1000 classes, else ``class_<i>``."""
    if labels is not None:
        if len(labels) != num_classes:
            raise AcmixDeployError(f"labels list has {len(labels)} names but the model has {num_classes} classes")
        return list(labels)
    if num_classes == 1000:
        return list(imagenet1k())
    return [f"class_{i}" for i in range(num_classes)]
