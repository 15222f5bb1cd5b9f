"""Class names: ImageNet-1k bundled, or a labels file (one name per line) given by the user.

The bundled names are the standard ImageNet-1k class names in index order (the WordNet synset
words used by torchvision's model metadata), one per line in ``data/imagenet1k_labels.txt``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import AcmixDeployError


@lru_cache(maxsize=1)
def imagenet1k() -> tuple[str, ...]:
    text = resources.files("acmix_deploy").joinpath("data/imagenet1k_labels.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


def read_labels(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise AcmixDeployError(f"{path}: labels file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AcmixDeployError(f"{path}: labels file is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def label_problem(labels: object, num_classes: int) -> str | None:
    """What makes ``labels`` unusable as the class names of a ``num_classes``-way model, or None when they are fine.

    Class names must be a list of non-blank strings usable as folder names (``evaluate`` matches
    image folders by name; Triton writes them one per line), one per output.
    """
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return "labels must be a list of strings"
    bad = [x for x in labels if not x.strip() or x in (".", "..") or "/" in x or "\\" in x or "\n" in x]
    if bad:
        return f"labels must be usable as folder names; not {bad[0]!r}"
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
