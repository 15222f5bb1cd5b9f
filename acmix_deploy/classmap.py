"""Which of a model's classes each image folder holds: folder names matched to class indices.

A class-per-folder tree (``root/<class>/<image>``) names its folders; the model numbers its
classes. This module is the one place that decides which folder is which class, for ``evaluate``
and for the accuracy checks of ``export --eval-data`` (through :mod:`acmix_deploy.imagefolder`).
In this order:

1. ``class_map`` (``--class-map FILE``, folder name -> class index, as timm's class maps): every
   folder must be in it. For layouts nothing else describes.
2. ``class_names`` (``--labels``: all the model's classes in index order): every folder must be one.
3. The model's own class names (its manifest's ``labels``; for a 1000-class model without them,
   the bundled ImageNet-1k names) and, for ImageNet-1k, the WordNet ids of ImageNet's own layout
   (``n01440764``...): a folder matches exactly, by id, or by name ignoring case and ``_`` vs
   space (``great_white_shark``). Any subset of the classes, ids and names mixed.
4. As many folders as the model has classes, none of them one of its names: sorted folder order
   is class order (torchvision's ``ImageFolder``, and the digits demo's ``0``..``9``), said in a
   note when the model has names (some folders matching and others not is refused instead).

Anything else is refused, naming the folders that match no class: a guessed order would make
every accuracy figure wrong without a sign.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AcmixDeployError
from .fileio import read_bounded_text
from .labels import imagenet1k, imagenet1k_wnids, name_problem
from .text import safe_text

MAX_CLASS_MAP_BYTES = 16 << 20  # ImageNet-21k's ~22k names and indices fit many times over
MAX_CLASS_MAP_ENTRIES = 100_000
MAX_INDEX_DIGITS = 9  # class indices are counts of outputs, not arbitrary integers
SHOWN = 5  # folders named in a refusal
WNID = re.compile(r"n\d{8}")


class EvaluationError(AcmixDeployError):
    """The evaluation data is missing, empty, or does not fit the model."""


@dataclass(frozen=True)
class ClassMatch:
    """How the folders of one tree map onto a model's classes.

    Attributes:
        classes: a name for each of the model's classes, in index order.
        folders: folder name -> class index, for every folder.
        how: folder name -> how it was matched: ``map``, ``list``, ``name``, ``wnid`` or ``order``.
        subset: the folders stand for only their own classes (a class without a folder is not in
            the data, and not reported as empty); False when the user or the folder count says
            the folders are all the classes.
        remark: what a report should say about the match, when :meth:`note` has no better line.
    """

    classes: tuple[str, ...]
    folders: dict[str, int]
    how: dict[str, str]
    subset: bool = False
    remark: str | None = None
    _by_index: dict[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_index", {index: name for name, index in self.folders.items()})

    @property
    def listed(self) -> list[int]:
        """The class indices reported: those with a folder for a subset, else all of them."""
        return sorted(self._by_index) if self.subset else list(range(len(self.classes)))

    def folder(self, index: int) -> str | None:
        """The folder holding class ``index``, if any."""
        return self._by_index.get(index)

    def wnid(self, index: int) -> str | None:
        """The WordNet id of class ``index`` when its folder was matched by one."""
        folder = self._by_index.get(index)
        return imagenet1k_wnids()[index] if folder is not None and self.how[folder] == "wnid" else None

    def shown(self, index: int) -> str:
        """How a report names class ``index``: ``n01440764 tench`` (by id), ``goldfish``, ``name (folder)`` (map)."""
        name, folder = self.classes[index], self._by_index.get(index)
        if folder is None or self.how[folder] in ("name", "order", "list"):
            shown = name
        elif self.how[folder] == "wnid":
            shown = f"{imagenet1k_wnids()[index]} {name}"
        else:
            shown = name if folder == name else f"{name} ({folder})"
        return safe_text(shown)  # folder names come from the user's disk: no raw control characters shown

    def note(self) -> str | None:
        """One line on how folders were matched, or None when their names are simply the classes."""
        kinds = {"wnid": "WordNet id", "name": "class name", "map": "the class map"}
        counts = {kind: sum(how == kind for how in self.how.values()) for kind in kinds}
        if not any(counts.values()):
            return self.remark
        parts = ", ".join(f"{count} by {kinds[kind]}" for kind, count in counts.items() if count)
        return f"{len(self.folders)} folder(s) matched to the model's {len(self.classes)} classes: {parts}"


def match_folders(
    folders: Sequence[str],
    num_classes: int,
    *,
    labels: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    class_map: Mapping[str, int] | None = None,
    root: str | Path = "data",
) -> ClassMatch:
    """Match class folders to the classes of a ``num_classes``-way model (rules in the module doc).

    Args:
        folders: the folder names (sorted order is the fallback class order).
        num_classes: the model's class count.
        labels: the model's own class names (its manifest's ``labels``), if it records them.
        class_names: all the model's classes in index order, as given by the user.
        class_map: folder name -> class index, as given by the user (see :func:`read_class_map`).
        root: the tree's root, for messages.

    Raises:
        EvaluationError: both ``class_names`` and ``class_map``, a folder that matches no class,
            two folders for one class, a class map index outside the model's classes, or (no
            names to match) a folder count other than the class count.
    """
    folders = list(folders)
    where = safe_text(root)
    if class_names is not None and class_map is not None:
        raise EvaluationError("give either class names (--labels) or a class map (--class-map), not both")
    names = list(labels) if labels is not None else (list(imagenet1k()) if num_classes == 1000 else None)
    if class_map is not None:
        _check_map(class_map, num_classes)
        finders = [("map", dict(class_map), False), ("map", _tolerant(class_map), True)]
        return _match(folders, finders, names or _map_names(class_map, num_classes), where, "the class map")
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(set(class_names)) != len(class_names):
            raise EvaluationError("class_names contains duplicate names")
        unknown = sorted(set(folders) - set(class_names))
        if unknown:
            raise EvaluationError(f"{where}: {len(unknown)} folder(s) not in class_names: {_some(unknown)}")
        if len(class_names) != num_classes:
            raise EvaluationError(f"class_names lists {len(class_names)} classes but the model has {num_classes}")
        position = {name: i for i, name in enumerate(class_names)}
        return ClassMatch(tuple(class_names), {f: position[f] for f in folders}, dict.fromkeys(folders, "list"))
    if names is not None:
        by_name = {name: i for i, name in enumerate(names)}
        finders = [("name", by_name, False)]
        if _is_imagenet1k(names):
            finders.append(("wnid", _tolerant({w: i for i, w in enumerate(imagenet1k_wnids())}), True))
        finders.append(("name", _tolerant(by_name), True))
        hits = [_find(f, finders) is not None for f in folders]
        # Only folders none of which is a class name, as many as the classes, keep ImageFolder's sorted
        # order (a tree of 1000 WordNet ids matches by id either way); some matching is a mismatch.
        if any(hits) or len(folders) != num_classes:
            return _match(folders, finders, names, where, _what(names))
        remark = f"no folder is one of the model's class names: classes taken in sorted folder order ({_some(folders)})"
        return ClassMatch(
            tuple(folders), {f: i for i, f in enumerate(folders)}, dict.fromkeys(folders, "order"), remark=remark
        )
    if len(folders) != num_classes:
        raise EvaluationError(
            f"{where} has {len(folders)} class folders but the model has {num_classes} classes"
            + (
                ""
                if len(folders) > num_classes
                else "; pass class_names (--labels: all the model's classes, in index order)"
                " or class_map (--class-map: folder name -> class index)"
            )
        )
    # ImageFolder's rule: sorted folder order is class order.
    return ClassMatch(tuple(folders), {f: i for i, f in enumerate(folders)}, dict.fromkeys(folders, "order"))


def read_class_map(path: str | Path) -> dict[str, int]:
    """A class map file: folder name -> class index, each entry checked as it is read.

    Formats (timm's class maps and more): JSON ``{"name": index, ...}`` (or a JSON list of names
    in index order); text with ``name index`` on every line (the index is the last blank-separated
    field, so names may hold spaces); or text with one name per line in index order. Blank lines
    are skipped. Indices are checked against the model where the map is used.

    Raises:
        EvaluationError: missing, too large or non-UTF-8 file, bad JSON, a name that is not a usable
            folder name, an index that is not a non-negative integer, a name or index given twice,
            lines mixing both text forms, more than :data:`MAX_CLASS_MAP_ENTRIES` entries.
    """
    path = Path(path)
    shown = safe_text(path)
    if not path.is_file():
        raise EvaluationError(f"{shown}: class map not found")
    text = read_bounded_text(path, "class map", MAX_CLASS_MAP_BYTES, error=EvaluationError, shown=shown)
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        entries = _json_entries(text, shown)
    else:
        entries = _text_entries(text, shown)
    if len(entries) > MAX_CLASS_MAP_ENTRIES:
        raise EvaluationError(f"{shown}: {len(entries)} entries (at most {MAX_CLASS_MAP_ENTRIES})")
    mapping: dict[str, int] = {}
    owner: dict[int, str] = {}
    for where, name, index in entries:
        if (problem := name_problem(name)) is not None:
            raise EvaluationError(f"{shown}: {where}: {problem}")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise EvaluationError(f"{shown}: {where}: class index must be a non-negative integer, not {index!r}")
        if name in mapping:
            raise EvaluationError(f"{shown}: {where}: {name!r} is given twice")
        if index in owner:
            raise EvaluationError(f"{shown}: {where}: class {index} is given twice ({owner[index]!r} and {name!r})")
        mapping[name], owner[index] = index, name
    if not mapping:
        raise EvaluationError(f"{shown}: class map is empty")
    return mapping


# ----------------------------------------------------------------------------------------- helpers


def _normal(name: str) -> str:
    """``Great_White  Shark`` -> ``great white shark``: what tolerant matching compares."""
    return " ".join(name.replace("_", " ").split()).casefold()


Finder = tuple[str, Mapping[str, int | None], bool]  # how it matches, name -> index, names normalised


def _tolerant(table: Mapping[str, int]) -> dict[str, int | None]:
    """``table`` keyed by :func:`_normal` names; a key two classes share maps to None (matches neither)."""
    keyed: dict[str, int | None] = {}
    for name, index in table.items():
        key = _normal(name)
        keyed[key] = index if keyed.get(key, index) == index else None
    return keyed


def _find(folder: str, finders: Sequence[Finder]) -> tuple[str, int] | None:
    """(how, class index) from the first finder that places ``folder``, or None."""
    for how, table, normalised in finders:
        index = table.get(_normal(folder) if normalised else folder)
        if index is not None:
            return how, index
    return None


def _match(folders: list[str], finders: Sequence[Finder], names: Sequence[str], where: str, what: str) -> ClassMatch:
    """Every folder placed by ``finders``; else one line naming those that match no class, or two for one class."""
    found = {f: _find(f, finders) for f in folders}
    unmatched = [f for f, hit in found.items() if hit is None]
    if unmatched:
        raise EvaluationError(
            f"{where}: {len(unmatched)} of {len(folders)} folder(s) match no class in {what}: {_some(unmatched)}"
            + ("" if what == "the class map" else "; or pass class_map (--class-map: folder name -> class index)")
        )
    holder: dict[int, str] = {}
    for folder, (_, index) in found.items():
        if index in holder:
            raise EvaluationError(
                f"{where}: folders {safe_text(holder[index])!r} and {safe_text(folder)!r}"
                f" both hold class {index} ({safe_text(names[index])})"
            )
        holder[index] = folder
    return ClassMatch(
        tuple(names), {f: hit[1] for f, hit in found.items()}, {f: hit[0] for f, hit in found.items()}, subset=True
    )


def _what(names: Sequence[str]) -> str:
    if _is_imagenet1k(names):
        return "ImageNet-1k (name folders by WordNet id, n01440764, or class name, tench)"
    return "the model's class names"


def _is_imagenet1k(names: Sequence[str]) -> bool:
    return len(names) == 1000 and tuple(names) == imagenet1k()


def _check_map(class_map: Mapping[str, int], num_classes: int) -> None:
    owner: dict[int, str] = {}
    for name, index in class_map.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_classes:
            raise EvaluationError(
                f"class map: {safe_text(name)!r} -> {index!r}, but the model's classes are 0..{num_classes - 1}"
            )
        if index in owner:
            raise EvaluationError(f"class map: class {index} is given twice ({owner[index]!r} and {name!r})")
        owner[index] = name


def _map_names(class_map: Mapping[str, int], num_classes: int) -> list[str]:
    """Names for a model that records none: the map's name for each class it maps, else ``class_<i>``."""
    names = [f"class_{i}" for i in range(num_classes)]
    for name, index in class_map.items():
        names[index] = name
    return names


def _some(names: Sequence[str]) -> str:
    return ", ".join(safe_text(n) for n in names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")


def _json_entries(text: str, shown: str) -> list[tuple[str, object, object]]:
    def pairs(items: list[tuple[str, object]]) -> list[tuple[str, object]]:
        return items  # keep duplicates: a dict would drop all but the last silently

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EvaluationError(f"{shown}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if isinstance(data, list) and all(isinstance(x, str) for x in data):  # names in index order
        return [(f"entry {i}", name, i) for i, name in enumerate(data)]
    if isinstance(data, list) and all(isinstance(x, tuple) and len(x) == 2 for x in data):
        return [(f"key {name!r}", name, index) for name, index in data]
    raise EvaluationError(f'{shown}: a JSON class map is an object {{"folder name": class index, ...}}')


def _text_entries(text: str, shown: str) -> list[tuple[str, object, object]]:
    lines = [(n, line.strip(" \t\r")) for n, line in enumerate(text.split("\n"), 1)]
    lines = [(n, line) for n, line in lines if line]
    indexed = [_name_and_index(line) for _, line in lines]
    with_index = [n for (n, _), hit in zip(lines, indexed, strict=True) if hit is not None]
    if not with_index:  # one name per line, in index order (timm's text class maps)
        return [(f"line {n}", line, i) for i, (n, line) in enumerate(lines)]
    if len(with_index) != len(lines):
        first_bare = next(n for (n, _), hit in zip(lines, indexed, strict=True) if hit is None)
        raise EvaluationError(
            f"{shown}: line {first_bare} has no class index but line {with_index[0]} has one;"
            " write `name index` on every line, or one name per line in index order"
        )
    return [(f"line {n}", *hit) for (n, _), hit in zip(lines, indexed, strict=True)]


def _name_and_index(line: str) -> tuple[str, int] | None:
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= MAX_INDEX_DIGITS:
        return parts[0].rstrip(" \t"), int(parts[1])
    return None
