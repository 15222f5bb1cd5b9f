"""NVIDIA's TensorRT ONNX-parser support data, loaded from ``support_table.json``.

The readiness check (:mod:`.readiness`) is logic; what TensorRT's parser accepts is data that
changes with every release, so it lives in a JSON file shipped with the package. Updating it for
a new operators.md is an edit of that file (and its ``retrieved`` date), never of the checks.

Loaded once at import. JSON has neither integer keys nor tuples, so the loader turns the majors
back into ``int`` keys and the ``added_in`` releases into ``(major, minor)`` tuples; a file that
lacks what the checks read fails here, with the missing key named, not deep inside a check.
"""

from __future__ import annotations

import json
from importlib import resources

from acmix_deploy.errors import AcmixDeployError

DATA_FILE = "support_table.json"
MAJOR_KEYS = ("min_opset", "max_opset", "max_opset_oldest_release", "supported", "unsupported", "strongly_typed_only")


class SupportTableError(AcmixDeployError):
    """The shipped support data is missing or malformed (a broken install)."""


def parse_support_table(text: str) -> dict:
    """The support table from its JSON text.

    Returns:
        ``{"retrieved", "notes", "sources", "majors": {int: {...}}, "added_in": {op: (major, minor)},
        "constant_inputs": {op: {"inputs": [int], "severity": str}}}``.

    Raises:
        SupportTableError: not JSON, or a key the checks read is missing or has the wrong type.
    """
    try:
        raw = json.loads(text)
        majors = {int(major): dict(entry) for major, entry in raw["majors"].items()}
        for major, entry in majors.items():
            missing = [key for key in MAJOR_KEYS if key not in entry]
            if missing:
                raise SupportTableError(f"TensorRT support table: major {major} lacks {', '.join(missing)}")
        added_in = {op: (int(release[0]), int(release[1])) for op, release in raw["added_in"].items()}
        constant_inputs = {
            op: {"inputs": [int(i) for i in rule["inputs"]], "severity": str(rule["severity"])}
            for op, rule in raw["constant_inputs"].items()
        }
        return {
            "retrieved": str(raw["retrieved"]),
            "notes": list(raw.get("notes", [])),
            "sources": list(raw["sources"]),
            "majors": majors,
            "added_in": added_in,
            "constant_inputs": constant_inputs,
        }
    except SupportTableError:
        raise
    except json.JSONDecodeError as exc:
        raise SupportTableError(f"TensorRT support table is not valid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SupportTableError(f"TensorRT support table is malformed ({type(exc).__name__}: {exc})") from None


def load_support_table() -> dict:
    """The table shipped next to this module (package data; see pyproject's package-data)."""
    try:
        text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise SupportTableError(f"TensorRT support table {DATA_FILE} is missing from the install ({exc})") from None
    return parse_support_table(text)


#: The shipped table; see ``support_table.json`` for its sources and what each entry means.
SUPPORT_TABLE: dict = load_support_table()

__all__ = ["SUPPORT_TABLE", "SupportTableError", "load_support_table", "parse_support_table"]
