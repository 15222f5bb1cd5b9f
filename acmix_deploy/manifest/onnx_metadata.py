"""Read an ONNX file's ``metadata_props`` without the onnx package and without loading the graph.

An ONNX file is one protobuf ``ModelProto``; its metadata is the repeated field 14 of
``StringStringEntryProto`` (key = field 1, value = field 2). Walking the top-level fields and
seeking past the others (the graph with its weights is one length-delimited field) reads a few
hundred bytes of an 87 MB model, keeps the model core free of onnx/onnxruntime imports, and makes
every artifact reader in the code base agree on what the metadata is. Hostile files are bounded:
lengths are checked against the file size and one metadata entry may not exceed 64 MiB.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

METADATA_FIELD = 14
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


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX model at ``path`` as a dict (later keys win, as in onnx).

    Raises:
        OnnxMetadataError: not a protobuf message, truncated, or a metadata entry that is not UTF-8.
        OSError: the file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    metadata: dict[str, str] = {}
    with path.open("rb") as stream:
        while (tag := _varint(stream, eof_ok=True)) is not None:
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise OnnxMetadataError("field number 0")
            if wire == _VARINT:
                _varint(stream)
            elif wire in (_FIXED64, _FIXED32):
                stream.seek(8 if wire == _FIXED64 else 4, 1)
            elif wire == _LEN:
                length = _varint(stream)
                if stream.tell() + length > size:
                    raise OnnxMetadataError(f"field {number} runs past the end of the file")
                if number == METADATA_FIELD:
                    if length > MAX_ENTRY_BYTES:
                        raise OnnxMetadataError(f"metadata entry of {length} bytes")
                    key, value = _entry(stream.read(length))
                    metadata[key] = value
                else:
                    stream.seek(length, 1)
            else:
                raise OnnxMetadataError(f"field {number} has unsupported wire type {wire}")
            if stream.tell() > size:
                raise OnnxMetadataError("truncated message")
    return metadata
