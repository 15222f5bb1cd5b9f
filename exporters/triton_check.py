"""Protobuf text for Triton configs, both ways: escaping strings we write, and reading the result back.

Strings in ``config.pbtxt`` come from manifests, file names and options: one unescaped quote in
an output name used to turn the rest of that string into config fields (another backend, an
``EXECUTION_ENV_PATH``, extra outputs). :func:`quote` makes any string a single protobuf string
literal. :func:`parse` reads the subset of the text format we write (fields, messages, lists,
scalars, escaped strings) into nested dicts, so :func:`check_config` can prove that the config
about to be installed says exactly what was meant: the model name, platform, batch limit, one
input and one output with their names and dims, the labels file, our one parameter, nothing else
at the top. No protobuf dependency: Triton's own schema parses it in the tests.
"""

from __future__ import annotations

import re
from typing import Any

from acmix_deploy.errors import AcmixDeployError

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\\n]|\\.)*")|([{}\[\]:,<>])|([A-Za-z0-9_.+-]+))', re.S)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f"}
_ESCAPES["v"] = "\v"
TOP_LEVEL = {
    "name", "platform", "max_batch_size", "input", "output", "instance_group",
    "dynamic_batching", "optimization", "parameters", "model_warmup",
}  # fmt: skip


class ConfigTextError(AcmixDeployError, ValueError):
    """The text is not protobuf text of the shape we write, or it says something other than meant."""


def quote(text: str) -> str:
    """``text`` as one protobuf text-format string literal: every byte outside printable ASCII octal-escaped."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _unquote(literal: str) -> str:
    body, raw, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            raw += char.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :]).group(0)  # type: ignore[union-attr]
            raw.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        elif nxt == "x":
            digits = re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2 :])
            if digits is None:
                raise ConfigTextError("bad \\x escape")
            raw.append(int(digits.group(0), 16))
            i += 2 + len(digits.group(0))
        elif nxt in _ESCAPES:
            raw += _ESCAPES[nxt].encode()
            i += 2
        else:
            raise ConfigTextError(f"unknown escape \\{nxt}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigTextError("string is not UTF-8") from None


def _tokens(text: str) -> list[tuple[str, object]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigTextError(f"unexpected text at offset {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        comment, string, punct, word = match.groups()
        if comment is None:
            tokens.append(("str", _unquote(string)) if string else ("p", punct) if punct else ("w", word))
    return tokens


def parse(text: str) -> dict[str, list[Any]]:
    """Protobuf text -> ``{field: [values]}``; messages are such dicts, scalars str/int/float/identifier str.

    Raises:
        ConfigTextError: malformed text.
    """
    tokens = _tokens(text)
    fields, end = _message(tokens, 0, closing=None)
    if end != len(tokens):
        raise ConfigTextError("text after the end of the config")
    return fields


def _message(tokens: list, i: int, closing: str | None) -> tuple[dict[str, list[Any]], int]:
    fields: dict[str, list[Any]] = {}
    while i < len(tokens) and tokens[i] != ("p", closing):
        kind, name = tokens[i]
        if kind != "w":
            raise ConfigTextError(f"expected a field name, got {name!r}")
        i += 1
        if tokens[i : i + 1] == [("p", ":")]:
            i += 1
        if tokens[i : i + 1] == [("p", "[")]:
            i += 1
            while tokens[i] != ("p", "]"):
                value, i = _value(tokens, i)
                fields.setdefault(name, []).append(value)
                if tokens[i] == ("p", ","):
                    i += 1
            i += 1
        else:
            value, i = _value(tokens, i)
            fields.setdefault(name, []).append(value)
        if i < len(tokens) and tokens[i] in (("p", ","), ("p", ";")):
            i += 1
    if closing is not None and i >= len(tokens):
        raise ConfigTextError(f"missing {closing!r}")
    return fields, i + (closing is not None)


def _value(tokens: list, i: int) -> tuple[Any, int]:
    if i >= len(tokens):
        raise ConfigTextError("config ends inside a field")
    kind, token = tokens[i]
    if (kind, token) in (("p", "{"), ("p", "<")):
        return _message(tokens, i + 1, "}" if token == "{" else ">")
    if kind == "str":
        while i + 1 < len(tokens) and tokens[i + 1][0] == "str":  # adjacent literals concatenate
            token, i = token + tokens[i + 1][1], i + 1
        return token, i + 1
    if kind == "w":
        if re.fullmatch(r"-?\d+", token):
            return int(token), i + 1
        return token, i + 1
    raise ConfigTextError(f"unexpected {token!r}")


def _one(fields: dict, name: str) -> Any:
    values = fields.get(name, [])
    if len(values) != 1:
        raise ConfigTextError(f"config has {len(values)} {name!r} fields, expected one")
    return values[0]


def check_config(text: str, *, name: str, platform: str, max_batch: int, tensors: dict[str, tuple[str, list[int]]],
                 parameters: dict[str, str], warmup_input: str | None) -> None:  # fmt: skip
    """Raise ConfigTextError unless ``text`` parses to exactly the model meant.

    ``tensors``: ``{"input": (name, dims), "output": (name, dims)}``; ``parameters``: the model
    parameters (key -> string value); ``warmup_input``: the input a warm-up sample feeds, or None.
    """
    fields = parse(text)
    unknown = set(fields) - TOP_LEVEL
    if unknown:
        raise ConfigTextError(f"config has unexpected fields {sorted(unknown)}")
    for field, want in (("name", name), ("platform", platform), ("max_batch_size", max_batch)):
        if _one(fields, field) != want:
            raise ConfigTextError(f"config {field} reads back as {_one(fields, field)!r}, not {want!r}")
    for section, (tensor, dims) in tensors.items():
        entry = _one(fields, section)
        if _one(entry, "name") != tensor or entry.get("dims") != dims:
            raise ConfigTextError(f"config {section} reads back as {entry!r:.120}")
        if section == "output" and entry.get("label_filename") != ["labels.txt"]:
            raise ConfigTextError("config output does not read labels.txt")
    found = {_one(p, "key"): _one(_one(p, "value"), "string_value") for p in fields.get("parameters", [])}
    if found != parameters:
        raise ConfigTextError(f"config parameters read back as {sorted(found)}, not {sorted(parameters)}")
    warm = [key for w in fields.get("model_warmup", []) for i in w.get("inputs", []) for key in i.get("key", [])]
    if warm != ([warmup_input] if warmup_input else []):
        raise ConfigTextError(f"config warm-up feeds {warm}, not {warmup_input!r}")
