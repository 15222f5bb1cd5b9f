"""Does a manifest describe the ONNX graph it travels with? The one check, for every reader of a graph.

A manifest is untrusted metadata: a sidecar can be left next to another model, an embedded copy
edited. Whoever is about to act on one (the ONNX Runtime runner, the Triton exporter, ``inspect``)
compares it with the graph's declared inputs and outputs here: tensor names, the image size, the
batch (dynamic or fixed, and which size) and the class count. The graph side is plain names and
shapes (:class:`GraphTensor`), so this module reads no ONNX itself (the core imports no onnx):
callers describe the graph from an ONNX Runtime session, or :func:`graph_io` reads the declared
inputs and outputs straight from the file (a few kilobytes of it, no onnx import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .onnx_metadata import OnnxMetadataError, read_onnx_io
from .schema import BatchSpec, Manifest, ManifestError

MAX_MESSAGE = 300  # names come from the file: a long list must not flood the one-line message


@dataclass(frozen=True)
class GraphTensor:
    """A graph input or output: its name and shape, ``int`` for a fixed dimension, ``str``/None for a free one."""

    name: str
    shape: tuple[int | str | None, ...]


def graph_io(path: str | Path) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """An ONNX file's declared inputs (initializers excluded) and outputs, read without loading the graph.

    Raises:
        ManifestError: not a readable ONNX model (one line naming the file).
    """
    try:
        inputs, outputs = read_onnx_io(path)
    except OnnxMetadataError as exc:
        raise ManifestError(f"{path}: not a readable ONNX model ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return [GraphTensor(n, d) for n, d in inputs], [GraphTensor(n, d) for n, d in outputs]


def _fixed(dim: int | str | None) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _batch_text(batch: BatchSpec) -> str:
    return f"dynamic {batch.min}..{batch.max}" if batch.dynamic else f"fixed {batch.max}"


def graph_mismatch(manifest: Manifest, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor]) -> str:
    """The first thing the graph's declared inputs/outputs contradict in ``manifest``, in one line; empty if none."""
    names = [t.name for t in inputs]
    if names != [manifest.input_name]:
        return f"the manifest's input {manifest.input_name!r} is not the graph's {names}"
    out = next((t for t in outputs if t.name == manifest.output_name), None)
    if out is None:
        return f"the manifest's output {manifest.output_name!r} is not in the graph's {[t.name for t in outputs]}"
    shape, size = list(inputs[0].shape), manifest.img_size
    if len(shape) != 4 or _fixed(shape[1]) != 3 or _fixed(shape[2]) != size or _fixed(shape[3]) != size:
        return f"input shape {shape} is not (batch, 3, {size}, {size})"
    graph_batch, batch = _fixed(shape[0]), manifest.batch
    if batch.dynamic and graph_batch is not None and not batch.min == batch.max == graph_batch:
        return f"the graph's batch is fixed at {graph_batch}, the manifest's is {_batch_text(batch)}"
    if not batch.dynamic and graph_batch != batch.max:
        return f"the graph's batch is {shape[0]!r}, the manifest's is {_batch_text(batch)}"
    out_shape = list(out.shape)
    if len(out_shape) != 2 or _fixed(out_shape[1]) != manifest.num_classes:
        return f"output {out.name!r} has shape {out_shape}, not (batch, {manifest.num_classes})"
    return ""


def check_graph(
    artifact: str | Path, manifest: Manifest, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor]
) -> None:
    """Refuse a manifest that does not describe the graph (see :func:`graph_mismatch`).

    Raises:
        ManifestError: one line naming ``artifact`` and the first disagreement.
    """
    problem = graph_mismatch(manifest, inputs, outputs)
    if problem:
        raise ManifestError(f"{artifact}: the graph does not match the manifest: {problem}"[:MAX_MESSAGE])


__all__ = ["GraphTensor", "check_graph", "graph_io", "graph_mismatch"]
