"""Read an ONNX file's ``metadata_props`` without the onnx package and without loading the graph.

An ONNX file is one protobuf ``ModelProto``; its metadata is the repeated field 14 of
``StringStringEntryProto`` (key = field 1, value = field 2). Walking the top-level fields and
seeking past the others (the graph with its weights is one length-delimited field) reads a few
hundred bytes of an 87 MB model, keeps the model core free of onnx/onnxruntime imports, and makes
every artifact reader in the code base agree on what the metadata is. Hostile files are bounded:
lengths are checked against the file size and one metadata entry may not exceed 64 MiB.

:func:`read_onnx_io` walks into the graph (field 7) the same way for its declared inputs (11) and
outputs (12): names and dimensions, what a manifest is checked against. Initializers are stepped
over (only their names are read, field 8, to leave them out of the inputs as onnx does), so
``inspect`` of an 87 MB model reads a few kilobytes and imports no onnx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

METADATA_FIELD = 14
GRAPH_FIELD, INITIALIZER_FIELD, INPUT_FIELD, OUTPUT_FIELD = 7, 5, 11, 12
MAX_VALUE_INFO_BYTES = 1 << 20  # one input/output declaration: a name and a few dimensions
MAX_ENTRY_BYTES = 64 << 20
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class OnnxMetadataError(ValueError):
    """The file is not a well-formed protobuf message (so not an ONNX model)."""


def _varint(stream: BinaryIO, *, eof_ok: bool = False) -> int | None:
    result, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            if eof_ok and shift == 0:
                return None
            raise OnnxMetadataError("truncated varint")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise OnnxMetadataError("varint longer than 10 bytes")


def _entry(data: bytes) -> tuple[str, str]:
    """Decode one ``StringStringEntryProto``."""
    import io

    stream, fields = io.BytesIO(data), {1: b"", 2: b""}
    while (tag := _varint(stream, eof_ok=True)) is not None:
        number, wire = tag >> 3, tag & 7
        if wire != _LEN:
            raise OnnxMetadataError(f"metadata entry field {number} has wire type {wire}")
        size = _varint(stream)
        value = stream.read(size)
        if len(value) != size:
            raise OnnxMetadataError("truncated metadata entry")
        fields[number] = value
    try:
        return fields[1].decode("utf-8"), fields[2].decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxMetadataError("metadata entry is not UTF-8") from None


def _fields(stream: BinaryIO, end: int) -> Iterator[tuple[int, int, int]]:
    """``(number, wire type, value)`` of each field of the message that ends at offset ``end``.

    A varint's value is the varint; a length-delimited field's is its length, with the stream at
    its first byte: the caller may read it, walk into it or leave it, the walk goes on after it.
    """
    while stream.tell() < end:
        tag = _varint(stream)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise OnnxMetadataError("field number 0")
        if wire == _VARINT:
            yield number, wire, _varint(stream)
        elif wire in (_FIXED64, _FIXED32):
            stream.seek(8 if wire == _FIXED64 else 4, 1)
        elif wire == _LEN:
            length = _varint(stream)
            start = stream.tell()
            if start + length > end:
                raise OnnxMetadataError(f"field {number} runs past the end of the file")
            yield number, wire, length
            stream.seek(start + length)
        else:
            raise OnnxMetadataError(f"field {number} has unsupported wire type {wire}")
    if stream.tell() > end:
        raise OnnxMetadataError("truncated message")


def _size(stream: BinaryIO) -> int:
    here = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(here)
    return end


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX model at ``path`` as a dict (later keys win, as in onnx).

    Raises:
        OnnxMetadataError: not a protobuf message, truncated, or a metadata entry that is not UTF-8.
        OSError: the file cannot be read.
    """
    metadata: dict[str, str] = {}
    with Path(path).open("rb") as stream:
        for number, wire, length in _fields(stream, _size(stream)):
            if number == METADATA_FIELD and wire == _LEN:
                if length > MAX_ENTRY_BYTES:
                    raise OnnxMetadataError(f"metadata entry of {length} bytes")
                key, value = _entry(stream.read(length))
                metadata[key] = value
    return metadata


Dims = tuple[int | str | None, ...]


def _text(stream: BinaryIO, length: int) -> str:
    try:
        return stream.read(length).decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxMetadataError("a graph name is not UTF-8") from None


def _dims(stream: BinaryIO, end: int) -> Dims:
    """A ``TensorShapeProto``: each dimension's ``dim_value`` (int) or ``dim_param`` (str), None when neither."""
    dims: list[int | str | None] = []
    for number, _, length in _fields(stream, end):
        if number != 1:  # dim
            continue
        dim: int | str | None = None
        for field, wire, value in _fields(stream, stream.tell() + length):
            if field == 1 and wire == _VARINT:
                dim = value - (1 << 64) if value >= 1 << 63 else value  # int64
            elif field == 2 and wire == _LEN:
                dim = _text(stream, value) or None
        dims.append(dim)
    return tuple(dims)


def _value_info(stream: BinaryIO, end: int) -> tuple[str, Dims]:
    """A ``ValueInfoProto``: its name and, for a tensor type with a shape, the dimensions (else ``()``)."""
    name, dims = "", ()
    for number, wire, length in _fields(stream, end):
        if number == 1 and wire == _LEN:
            name = _text(stream, length)
        elif number == 2 and wire == _LEN:  # TypeProto
            for field, kind, size in _fields(stream, stream.tell() + length):
                if field == 1 and kind == _LEN:  # tensor_type
                    for part, form, span in _fields(stream, stream.tell() + size):
                        if part == 2 and form == _LEN:  # shape
                            dims = _dims(stream, stream.tell() + span)
    return name, dims


def _tensor_name(stream: BinaryIO, end: int) -> str:
    """An initializer's (``TensorProto``) name, field 8; its data is stepped over."""
    name = ""
    for number, wire, length in _fields(stream, end):
        if number == 8 and wire == _LEN:
            name = _text(stream, length)
    return name


def read_onnx_io(path: str | Path) -> tuple[list[tuple[str, Dims]], list[tuple[str, Dims]]]:
    """The graph's declared inputs (initializers left out, as onnx lists them) and outputs: name, dimensions.

    Raises:
        OnnxMetadataError: not a protobuf message, truncated, no graph, or a declaration over 1 MiB.
        OSError: the file cannot be read.
    """
    inputs: list[tuple[str, Dims]] = []
    outputs: list[tuple[str, Dims]] = []
    initializers: set[str] = set()
    found = False
    with Path(path).open("rb") as stream:
        for number, wire, length in _fields(stream, _size(stream)):
            if number != GRAPH_FIELD or wire != _LEN:
                continue
            found = True
            for field, kind, size in _fields(stream, stream.tell() + length):
                if kind != _LEN:
                    continue
                if field == INITIALIZER_FIELD:
                    initializers.add(_tensor_name(stream, stream.tell() + size))
                elif field in (INPUT_FIELD, OUTPUT_FIELD):
                    if size > MAX_VALUE_INFO_BYTES:
                        raise OnnxMetadataError(f"a graph input/output declaration of {size} bytes")
                    (inputs if field == INPUT_FIELD else outputs).append(_value_info(stream, stream.tell() + size))
    if not found:
        raise OnnxMetadataError("no graph")
    return [(n, d) for n, d in inputs if n not in initializers], outputs
