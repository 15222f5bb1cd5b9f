"""Graph passes run on every exported ONNX: fold constants, merge chained Slices, clean up, sort,
check, infer shapes.

onnx-graphsurgeon does the folding (through ONNX Runtime) and dead-node removal; ``onnx.checker``
with ``full_check`` then validates the result, including strict shape inference.

``torch.onnx`` exports an index over several dimensions (``t[:, :, 1:8, :, :6]``) as one Slice per
dimension. ONNX Runtime runs each Slice as a copy and does not merge them, so the first copy
exists only to be cut again. :func:`merge_chained_slices` makes them one Slice over all the axes:
exact (slices of different axes commute), and on ACmix-ResNet-50, whose halo gathers are such
chains (35 of them), ORT ran the model 2.8% and 5.0% faster at batch 1, 4.2% and 1.8% at batch 8
(two interleaved runs, ``scripts/bench_floor.py --onnx``, the second on a loaded machine).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from acmix_deploy.fileio import atomic_output, atomic_write_text
from acmix_deploy.manifest import MANIFEST_KEY, Manifest, sidecar_path

TWO_GB = 2**31


def optimize_graph(model: onnx.ModelProto, *, batch_dim: int | str) -> onnx.ModelProto:
    """Fold constants, remove dead nodes, toposort; name the batch dimension of inputs/outputs."""
    graph = gs.import_onnx(model)
    graph.fold_constants(fold_shapes=True, partitioning=None, error_ok=False)
    graph.cleanup(remove_unused_graph_inputs=False)
    merge_chained_slices(graph)
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    for tensor in (*graph.inputs, *graph.outputs):
        if tensor.shape:
            tensor.shape = [batch_dim, *tensor.shape[1:]]
    out = gs.export_onnx(graph, do_type_check=True)
    out.ir_version = model.ir_version
    out.producer_name, out.producer_version = model.producer_name, model.producer_version
    del out.opset_import[:]
    out.opset_import.extend(model.opset_import)
    return out


def _slice_params(node: gs.Node) -> list[np.ndarray] | None:
    """starts, ends, axes, steps of a Slice whose parameters are all constants; else None."""
    if node.op != "Slice" or not 4 <= len(node.inputs) <= 5:
        return None
    params = node.inputs[1:]
    if not all(isinstance(t, gs.Constant) for t in params):
        return None
    starts, ends, axes, *steps = (np.asarray(t.values).reshape(-1) for t in params)
    steps_or_ones = steps[0] if steps else np.ones_like(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps_or_ones) or (axes < 0).any():
        return None
    return [starts, ends, axes, steps_or_ones]


def merge_chained_slices(graph: gs.Graph) -> int:
    """Fold every Slice that only feeds Slices of other axes into each of them; returns how many.

    Only constant parameters with non-negative axes are merged, and only where every consumer of
    the first Slice's output is such a Slice and the output is not a graph output, so the first
    copy disappears (torch.onnx shares a common leading Slice between index expressions).
    """
    outputs = {id(t) for t in graph.outputs}
    merged = 0
    for producer in list(graph.nodes):  # topological order: chains of 3+ fold from the top
        first = _slice_params(producer)
        if first is None or id(producer.outputs[0]) in outputs:
            continue
        link = producer.outputs[0]
        consumers = list(link.outputs)
        seconds = [_slice_params(node) if node.inputs[0] is link else None for node in consumers]
        axes = set(first[2].tolist())
        if not consumers or any(p is None or axes & set(p[2].tolist()) for p in seconds):
            continue
        for node, second in zip(consumers, seconds, strict=True):
            # int64 for all four: ONNX wants one index type, and int64 holds either Slice's values
            joined = [np.concatenate([a, b]).astype(np.int64) for a, b in zip(first, second, strict=True)]
            prefix = f"{node.name or 'slice'}_merged{merged}"
            names = ("starts", "ends", "axes", "steps")
            params = [gs.Constant(f"{prefix}_{name}", values) for name, values in zip(names, joined, strict=True)]
            node.inputs = [producer.inputs[0], *params]
            merged += 1
        producer.outputs.clear()
    return merged


def check_and_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.checker`` full check plus strict shape inference; returns the model with value_info."""
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def float64_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of double-precision initializers and values (TensorRT and fp16 paths reject them)."""
    double = onnx.TensorProto.DOUBLE
    names = [t.name for t in model.graph.initializer if t.data_type == double]
    for vi in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        if vi.type.tensor_type.elem_type == double:
            names.append(vi.name)
    for node in model.graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == double for a in node.attribute):
            names.append(node.name or node.output[0])
    return names


def embed_manifest(model: onnx.ModelProto, manifest_json: str) -> None:
    """Put ``manifest_json`` into ``metadata_props``, replacing any manifest already there."""
    keep = [p for p in model.metadata_props if p.key != MANIFEST_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, manifest_json


def save_with_manifest(model: onnx.ModelProto, manifest_json: str, path: Path, *, force: bool) -> None:
    """Write an artifact and its ``<path>.json`` sidecar, manifest embedded in both, each atomically.

    The manifest must read back before anything is written. Weights stay embedded unless the
    model exceeds protobuf's 2 GB limit; then they go to ``<path>.data`` beside it.
    """
    Manifest.from_json(manifest_json)
    embed_manifest(model, manifest_json)
    _save(model, path, force)
    atomic_write_text(sidecar_path(path), manifest_json + "\n", force=True)


def _save(proto: onnx.ModelProto, path: Path, force: bool) -> None:
    if proto.ByteSize() < TWO_GB:
        with atomic_output(path, force=force) as tmp:
            tmp.write_bytes(proto.SerializeToString())
        return
    data_name = path.name + ".data"
    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        staged = Path(staging) / path.name
        onnx.save_model(proto, staged, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
        with atomic_output(path.with_name(data_name), force=force) as tmp:
            tmp.write_bytes((Path(staging) / data_name).read_bytes())
        with atomic_output(path, force=force) as tmp:
            tmp.write_bytes(staged.read_bytes())
