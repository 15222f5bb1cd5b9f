"""Strings that came from an artifact, made safe to show on a terminal and checked before use.

Class names, checkpoint metadata (``arch``, configs), manifest fields and file names are written
by whoever made the file. Printed raw, an ANSI CSI/OSC sequence can recolour or retitle the
user's terminal, rewrite the clipboard, or hide text behind ``\\r``; a Unicode bidi override can
make a name read differently from what it is. :func:`is_printable` is the rule the validation
layer applies to names it accepts; :func:`safe_text` / :func:`safe_value` are what every output
path applies to anything else it shows: control and format characters become visible escapes
(``\\x1b``, ``\\u202e``), everything else (accents, CJK, emoji) is kept.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Unicode categories that do something other than print a glyph: controls (C0/C1, incl. ESC, CR,
# BEL), format characters (bidi overrides, zero-width joiners), line/paragraph separators,
# surrogates, private use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
MAX_SHOWN_CHARS = 4096  # a longer artifact string is cut when shown
MAX_DEPTH = 32  # nesting shown before a structure is cut (self-referencing containers end here too)
# A name that becomes one path component inside an output folder: no separators, no "..", not hidden.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def is_printable(text: object) -> bool:
    """True for a string without control, format, separator or unassigned characters (spaces allowed)."""
    return isinstance(text, str) and not any(_unsafe(c) for c in text)


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one file or folder name inside an output folder, or None when it can."""
    if PLAIN_NAME.fullmatch(name) and ".." not in name:
        return None
    return (
        f"{safe_text(repr(name), 80)} is not a plain name (letters, digits, _ . + -; "
        "not starting with a dot, no separators or '..', at most 128 characters)"
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe_text(text: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as a string fit for a terminal: unsafe characters escaped, cut after ``limit`` characters."""
    text = text if isinstance(text, str) else str(text)
    cut = len(text) > limit
    text = text[:limit]
    if not cut and not any(_unsafe(c) for c in text):
        return text
    shown = "".join(_escape(c) if _unsafe(c) else c for c in text)
    return shown + ("..." if cut else "")


def safe_value(value: Any, *, _depth: int = 0) -> Any:
    """A JSON-shaped copy of ``value`` whose every string (keys too) went through :func:`safe_text`.

    Non-JSON objects become their (escaped) ``repr``; structures nested deeper than
    :data:`MAX_DEPTH`, self-referencing ones included, are cut with ``"..."``.
    """
    if _depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, str):
        return safe_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {safe_text(k): safe_value(v, _depth=_depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_value(v, _depth=_depth + 1) for v in value]
    return safe_text(repr(value))


__all__ = [
    "MAX_DEPTH",
    "MAX_SHOWN_CHARS",
    "PLAIN_NAME",
    "is_printable",
    "plain_name_problem",
    "safe_text",
    "safe_value",
]
