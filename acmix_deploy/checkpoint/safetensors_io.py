"""Read and write ``.safetensors`` checkpoints through the ``safetensors`` package, with our errors.

The format is a little-endian u64 header length, a JSON header mapping tensor names to
``{dtype, shape, data_offsets}`` (plus an optional ``__metadata__`` of strings), then raw bytes.
It holds no code, which is why it is the safest checkpoint format we read. The package (the
format's reference implementation) does the parsing and every bounds check: header size
(at most 100 MB), offsets inside the file and covering it, shape times dtype size equal to the
bytes given, so a header claiming a huge tensor is refused before anything is allocated.

What stays here: sniffing the format from a file's first bytes, and turning the package's
errors into a one-line :class:`CheckpointError`. The file is read into memory rather than
memory-mapped: a mapped checkpoint that is rewritten in place while its tensors are alive
(a training loop saving to the same path) would crash the process on the next access.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from ..errors import CheckpointError

MAX_HEADER_BYTES = 100_000_000  # the package's own limit on the JSON header
# Weights of the models we load come in these; the package knows more (float8, complex, ...),
# which no ACmix model holds and on which torch lacks operations we apply (isfinite).
SUPPORTED_DTYPES = (
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


def looks_like_safetensors(head: bytes) -> bool:
    """True when the first bytes are a plausible safetensors header length followed by '{'."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= MAX_HEADER_BYTES and head[8:9] == b"{"


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors, metadata) of a safetensors file; the tensors own their memory.

    Raises:
        CheckpointError: the file is unreadable, malformed or truncated (one line, never the package's error).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        tensors = load(data)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: {_explain(exc, data)}") from None
    except Exception as exc:  # noqa: BLE001 - a dtype this torch lacks, or anything else the package lets through
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {_line(exc)})") from None
    odd = [f"{name} ({t.dtype})" for name, t in tensors.items() if t.dtype not in SUPPORTED_DTYPES]
    if odd:
        more = f" (+{len(odd) - 1} more)" if len(odd) > 1 else ""
        raise CheckpointError(f"{path}: unsupported tensor dtype in {odd[0]}{more}")
    # The package has validated the header (a JSON object whose __metadata__ maps strings to strings).
    (n,) = struct.unpack("<Q", data[:8])
    try:
        metadata = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError):
        raise CheckpointError(f"{path}: safetensors header is not valid JSON") from None
    return tensors, metadata


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise tensors (moved to CPU, made contiguous) into safetensors bytes."""
    from safetensors.torch import save

    own: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in storages:
            t = t.clone()  # the package refuses tensors that share memory; each gets its own bytes on disk anyway
        if t.numel():
            storages.add(t.untyped_storage().data_ptr())
        own[name] = t
    data = save(own, {str(k): str(v) for k, v in (metadata or {}).items()} or None)
    return _sorted_metadata(data)


def _sorted_metadata(data: bytes) -> bytes:
    """The same file with ``__metadata__`` in sorted key order.

    The package writes metadata in its hash map's order, which changes from process to process, so
    the same checkpoint saved twice gave different bytes (and sha256). Tensor entries keep their
    order and their data offsets (which count from the end of the header); the header is re-padded
    with spaces to a multiple of 8 bytes, as the format's writer does.
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    if "__metadata__" not in header:
        return data
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps({"__metadata__": header.pop("__metadata__"), **header}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n :]


def _explain(exc: Exception, data: bytes) -> str:
    """The package's message in our words: what is wrong with the file, in one line."""
    detail = _line(exc).split(": ", 1)[-1] if _line(exc).startswith("Error while deserializing") else _line(exc)
    if len(data) < 8 or "header too small" in detail:
        return f"truncated safetensors file ({len(data)} bytes)"
    (n,) = struct.unpack("<Q", data[:8])
    if "header too large" in detail or "invalid header length" in detail:
        return f"safetensors header length {n} exceeds the file or the {MAX_HEADER_BYTES}-byte limit"
    if "invalid JSON" in detail or "invalid UTF-8" in detail:
        try:
            json.loads(data[8 : 8 + n])
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return f"safetensors header is not valid JSON ({detail})"
        return f"malformed safetensors header ({detail})"
    if "offset" in detail or "not fully covered" in detail:
        return f"tensor data lies outside the file or leaves part of it unused (truncated?): {detail}"
    return f"not a valid safetensors file ({detail})"


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
