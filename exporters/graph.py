"""Graph passes run on every exported ONNX: fold constants, clean up, sort, check, infer shapes.

onnx-graphsurgeon does the folding (through ONNX Runtime) and dead-node removal; ``onnx.checker``
with ``full_check`` then validates the result, including strict shape inference.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs

from acmix_deploy.fileio import atomic_output, atomic_write_text
from acmix_deploy.manifest import MANIFEST_KEY, Manifest, sidecar_path

TWO_GB = 2**31


def optimize_graph(model: onnx.ModelProto, *, batch_dim: int | str) -> onnx.ModelProto:
    """Fold constants, remove dead nodes, toposort; name the batch dimension of inputs/outputs."""
    graph = gs.import_onnx(model)
    graph.fold_constants(fold_shapes=True, partitioning=None, error_ok=False)
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
