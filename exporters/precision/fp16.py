"""float16 (mixed) variant of an fp32 ONNX: the graph rewrite and its proof.

:func:`to_fp16` keeps weights and compute in float16 except the ops whose precision matters
(LayerNormalization, Softmax, reductions: float32 behind Cast nodes), with float32 graph inputs and
outputs. The rewrite (:func:`convert_fp16`) is written directly with ``onnx``: no converter
dependency, and every decision is visible here. Manifest precision ``"mixed"`` (``"fp16"`` when
nothing stays float32); TensorRT builds it strongly typed.

What runs where (onnxruntime 1.32, CPU EP): the fp16 graph loads and runs; ORT's CPU EP has
float16 kernels for only some ops and inserts Cast nodes around the rest (its ``InsertCastTransformer``),
so on CPU the fp16 model computes largely in float32 on float16-rounded tensors: a valid check of
the rounding of weights and activations, not of fp16 accumulation (TensorRT/GPUs accumulate fp16
matrix products in float32, which this approximates). :func:`ort_cpu_fp16_coverage` reports it.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy.parity import PRECISION_TOLERANCES, RANDOM_INPUTS, Tolerance, compare_outputs, random_inputs
from acmix_deploy.runtimes.onnxruntime import ort_session

from ..validate import ParityError
from .blocks import keep_fp32_nodes
from .common import (
    PrecisionError,
    PrecisionReport,
    ProvenVariant,
    check_outputs,
    cpu_runner,
    folder_accuracy,
    folder_heldout,
    heldout_parity,
    load_fp32_source,
    random_parity,
    write_variant,
)

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 2.0**-24
DEFAULT_KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceL2", "Pow", "Sqrt")
# Ops that only move data: they take the precision of their input instead of forcing one (no casts).
_FOLLOW_OPS = frozenset(
    {"Reshape", "Transpose", "Slice", "Split", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand", "Tile",
     "Gather", "Concat", "Pad", "MaxPool", "Relu", "DepthToSpace", "SpaceToDepth"}
)  # fmt: skip
# Float inputs that must stay float32 whatever the node's precision (by op and input index).
_FP32_SLOTS = {"Resize": {1, 2}, "Upsample": {1}}
_TYPE_AGNOSTIC = frozenset({"Shape", "Size"})
FP16_TOLERANCE = PRECISION_TOLERANCES["fp16"]


def _fp16_array(arr: np.ndarray, stats: dict) -> np.ndarray:
    """``arr`` in float16, saturated at +-65504; counts what is clipped or flushed to zero."""
    finite = np.abs(arr[np.isfinite(arr)])
    stats["clipped"] += int(np.sum(finite > FP16_MAX))
    stats["flushed"] += int(np.sum((finite > 0) & (finite < FP16_MIN_SUBNORMAL)))
    return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)


@dataclass
class _Graph:
    """What the rewrite knows of the (shape-inferred) graph: element types and initializers."""

    graph: onnx.GraphProto
    elem: dict[str, int]
    inits: dict[str, onnx.TensorProto]

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> _Graph:
        elem = {vi.name: vi.type.tensor_type.elem_type for vi in (*graph.value_info, *graph.input, *graph.output)}
        inits = {t.name: t for t in graph.initializer}
        elem.update({name: t.data_type for name, t in inits.items()})
        return cls(graph, elem, inits)

    def float_slots(self, node: onnx.NodeProto) -> list[int]:
        """The input positions of ``node`` holding float32 tensors whose precision the node decides."""
        if node.op_type in _TYPE_AGNOSTIC:
            return []
        skip = _FP32_SLOTS.get(node.op_type, set())
        return [i for i, name in enumerate(node.input) if name and i not in skip and self.elem.get(name) == FLOAT]


def _plan(
    g: _Graph, keep: set[str], keep_nodes: frozenset[str] = frozenset()
) -> tuple[list[tuple[onnx.NodeProto, int | None]], dict[str, int]]:
    """Each node's precision (None: no float tensors) and the precision each float tensor is produced in.

    ``keep`` are op types, ``keep_nodes`` node names computed in float32.
    """
    current: dict[str, int] = {i.name: FLOAT for i in g.graph.input}
    plan: list[tuple[onnx.NodeProto, int | None]] = []
    for node in g.graph.node:
        slots = g.float_slots(node)
        outs_float = any(g.elem.get(o) == FLOAT for o in node.output)
        if not slots and not outs_float:
            prec = None
        elif node.op_type in keep or node.name in keep_nodes:
            prec = FLOAT
        elif node.op_type in _FOLLOW_OPS:
            produced = [current[node.input[i]] for i in slots if node.input[i] in current]
            prec = FLOAT if produced and all(p == FLOAT for p in produced) else HALF
        else:
            prec = HALF
        plan.append((node, prec))
        for o in node.output:
            if g.elem.get(o) == FLOAT:
                current[o] = prec if prec is not None else FLOAT
    return plan, current


def _convert_initializers(g: _Graph, plan: list[tuple[onnx.NodeProto, int | None]], stats: dict) -> dict[str, str]:
    """float16 initializers where float16 nodes use them (a float16 copy where float32 nodes do too).

    Returns the name of each converted initializer's float16 version.
    """
    wants: dict[str, set[int | None]] = {}
    for node, prec in plan:
        for i in g.float_slots(node):
            if node.input[i] in g.inits:
                wants.setdefault(node.input[i], set()).add(prec)
    half_name: dict[str, str] = {}
    new_inits = []
    for name, tensor in g.inits.items():
        need = wants.get(name, set())
        if tensor.data_type != FLOAT or HALF not in need:
            if tensor.data_type == FLOAT:
                stats["initializers_fp32"] += 1
            continue
        arr = _fp16_array(numpy_helper.to_array(tensor), stats)
        if FLOAT in need:
            half_name[name] = f"{name}__fp16"
            new_inits.append(numpy_helper.from_array(arr, half_name[name]))
            stats["initializers_fp32"] += 1
        else:
            tensor.CopyFrom(numpy_helper.from_array(arr, name))
            half_name[name] = name
        stats["initializers_fp16"] += 1
    g.graph.initializer.extend(new_inits)
    return half_name


def _rewrite_nodes(
    g: _Graph,
    plan: list[tuple[onnx.NodeProto, int | None]],
    current: dict[str, int],
    half_name: dict[str, str],
    stats: dict,
) -> list[onnx.NodeProto]:
    """The new node list: inputs re-pointed at float16 weights or Casts, float16 attributes, output Casts."""
    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}  # one Cast per tensor and direction

    def cast(name: str, to: int) -> str:
        if (name, to) not in casts:
            out = f"{name}__to_{'fp16' if to == HALF else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=f"{out}__cast", to=to))
            casts[(name, to)] = out
            stats["casts"] += 1
        return casts[(name, to)]

    for node, prec in plan:
        if prec is not None:
            for i in g.float_slots(node):
                name = node.input[i]
                if name in g.inits:  # a weight: its float16 version exists wherever a float16 node reads it
                    node.input[i] = half_name[name] if prec == HALF else name
                elif current.get(name, FLOAT) != prec:
                    node.input[i] = cast(name, prec)
            if prec == HALF:
                for attr in node.attribute:
                    if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                        attr.i = HALF
                    elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                        attr.t.CopyFrom(
                            numpy_helper.from_array(_fp16_array(numpy_helper.to_array(attr.t), stats), attr.t.name)
                        )
        nodes.append(node)

    # float16 graph outputs: the producer writes <name>__fp16, a final Cast restores float32
    for name in (o.name for o in g.graph.output):
        if current.get(name) == HALF:
            inner = f"{name}__fp16"
            for node in nodes:
                node.output[:] = [inner if o == name else o for o in node.output]
                node.input[:] = [inner if i == name else i for i in node.input]
            nodes.append(helper.make_node("Cast", [inner], [name], name=f"{name}__cast_out", to=FLOAT))
            stats["casts"] += 1
    return nodes


def convert_fp16(
    model: onnx.ModelProto,
    keep_fp32_ops: Sequence[str] = DEFAULT_KEEP_FP32_OPS,
    keep_fp32_nodes: Collection[str] = (),
) -> tuple[onnx.ModelProto, dict]:
    """float32 -> float16 graph rewrite (in memory). Returns the new model and conversion statistics.

    Each node gets a precision: ops in ``keep_fp32_ops`` and nodes named in ``keep_fp32_nodes``
    (a block kept in fp32: :mod:`.blocks`) float32, data-movement ops follow their input,
    everything else float16. Float initializers become float16 where only float16 nodes use
    them (a float16 copy is added where both do); a Cast is inserted wherever a tensor's precision
    differs from its consumer's (one per tensor and direction); graph inputs and outputs stay float32.
    """
    model = onnx.shape_inference.infer_shapes(copy.deepcopy(model), strict_mode=True)
    g = _Graph.of(model.graph)
    plan, current = _plan(g, set(keep_fp32_ops), frozenset(keep_fp32_nodes))
    stats = {"clipped": 0, "flushed": 0, "initializers_fp16": 0, "initializers_fp32": 0, "casts": 0}
    half_name = _convert_initializers(g, plan, stats)
    nodes = _rewrite_nodes(g, plan, current, half_name, stats)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    stats["nodes_fp16"] = sum(prec == HALF for _, prec in plan)
    stats["nodes_fp32"] = sum(prec == FLOAT for _, prec in plan)
    stats["fp32_ops"] = sorted({n.op_type for n, p in plan if p == FLOAT})
    return model, stats


def ort_cpu_fp16_coverage(model: onnx.ModelProto) -> dict:
    """How ONNX Runtime's CPU EP runs a float16 model: float16 nodes left after its graph transforms.

    ORT inserts Cast nodes around float16 nodes it has no CPU kernel for and runs them in float32;
    this counts, in the optimised graph ORT writes, the nodes computing in float16 per op type.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        ort_session(model, optimized_model_path=out)
        opt = onnx.load(out)
    opt = onnx.shape_inference.infer_shapes(opt)
    elem = {
        vi.name: vi.type.tensor_type.elem_type for vi in (*opt.graph.value_info, *opt.graph.input, *opt.graph.output)
    }
    elem.update({t.name: t.data_type for t in opt.graph.initializer})
    fp16_ops: dict[str, int] = {}
    for node in opt.graph.node:
        if node.op_type != "Cast" and any(elem.get(o) == HALF for o in node.output):
            fp16_ops[node.op_type] = fp16_ops.get(node.op_type, 0) + 1
    return {
        "nodes_after_ort_optimisation": len(opt.graph.node),
        "casts_after_ort_optimisation": sum(n.op_type == "Cast" for n in opt.graph.node),
        "fp16_compute_nodes_by_op": dict(sorted(fp16_ops.items(), key=lambda kv: -kv[1])),
    }


def to_fp16(
    src_onnx: str | Path,
    dst_onnx: str | Path,
    *,
    keep_fp32_ops: Sequence[str] = DEFAULT_KEEP_FP32_OPS,
    keep_fp32: Sequence[str] = (),
    force: bool = False,
    tolerance: Tolerance = FP16_TOLERANCE,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    numpy_check: bool = True,
    check_images: str | Path | None = None,
) -> PrecisionReport:
    """Write a float16 (mixed-precision) copy of an fp32 acmix-deploy ONNX, proven against it.

    Args:
        src_onnx: the fp32 ONNX (from :func:`acmix_deploy.exporters.onnx.export_onnx`).
        dst_onnx: the new ONNX; its manifest also goes to ``<dst>.json``.
        keep_fp32_ops: op types computed in float32 (behind Cast nodes).
        keep_fp32: stages/blocks/branches (``layer2.0``, ``layer3.1.attention``: the names
            ``profile`` and ``sensitivity`` print) whose nodes stay float32; recorded in the
            manifest's ``kept_fp32``.
        force: replace existing files.
        tolerance: parity bounds vs the fp32 model in ONNX Runtime (raise ParityError outside them).
        eval_dir: an image folder (one sub-folder per class) to measure accuracy and agreement on.
        eval_limit: at most this many images of ``eval_dir``.
        check_images: an image folder (default ``eval_dir``) on which the variant must also stay
            within ``tolerance`` of fp32 (up to 256 images, seeded; recorded as ``heldout``):
            real activations, which random inputs do not reach.
        numpy_check: also run the float16 graph in ``onnx.reference`` (numpy, computing in float16
            dtype, i.e. float16-rounded arithmetic, stricter than fp32 accumulation) on one random
            input and record its difference from fp32: ORT CPU runs most float16 ops in float32.

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    started = time.perf_counter()
    dst = check_outputs(dst_onnx, force)
    source = load_fp32_source(src_onnx)
    manifest = source.manifest
    kept_nodes = keep_fp32_nodes(source.model, manifest, keep_fp32)
    try:
        converted, stats = convert_fp16(source.model, keep_fp32_ops, kept_nodes)
        onnx.checker.check_model(converted, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PrecisionError(f"float16 conversion produced an invalid graph: {str(exc).splitlines()[0]}") from None

    fp32_run = source.run
    try:
        run = cpu_runner(converted)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise PrecisionError(f"onnxruntime (CPU) cannot load the float16 model: {exc}") from None
    parity, parity_report = random_parity(fp32_run, run, manifest.img_size, tolerance)
    images_dir = check_images if check_images is not None else eval_dir
    heldout, heldout_report = (
        heldout_parity(fp32_run, run, folder_heldout(images_dir, manifest), tolerance) if images_dir else (None, None)
    )
    accuracy = folder_accuracy(fp32_run, run, eval_dir, manifest, eval_limit) if eval_dir is not None else None
    details = {
        "keep_fp32_ops": list(keep_fp32_ops),
        **({"keep_fp32": {"names": list(keep_fp32), "nodes": len(kept_nodes)}} if keep_fp32 else {}),
        "conversion": stats,
        "onnxruntime_cpu": ort_cpu_fp16_coverage(converted)
        | {
            "note": "ORT CPU runs float16 nodes it has no kernel for in float32 between inserted Casts: parity "
            "here checks float16 weight/activation rounding; accumulation precision is the runtime's (TensorRT: fp32)"
        },
    }
    if numpy_check:
        from onnx.reference import ReferenceEvaluator

        x = random_inputs(1, manifest.img_size, seed=321)
        ref, out = fp32_run(x), ReferenceEvaluator(converted).run(None, {manifest.input_name: x})[0]
        numpy_report = compare_outputs([ref], [out], [1], tolerance, inputs=f"{RANDOM_INPUTS} (1 image)")
        details["numpy_fp16_reference"] = numpy_report.to_dict() | {
            "runtime": "onnx.reference.ReferenceEvaluator (numpy, float16 arithmetic)"
        }
    if not parity_report.passed:
        raise ParityError(f"float16 model out of tolerance vs fp32: {parity_report.describe()}", parity_report)
    if heldout_report is not None and not heldout_report.passed:
        raise ParityError(
            f"float16 model out of tolerance vs fp32 on {heldout_report.inputs}: {heldout_report.describe()}; "
            "nothing written",
            heldout_report,
        )
    precision = "mixed" if stats["nodes_fp32"] else "fp16"
    variant = ProvenVariant(
        converted, precision, parity, run, accuracy=accuracy, details=details, heldout=heldout,
        kept_fp32=list(keep_fp32) or None,
    )  # fmt: skip
    return write_variant(source, variant, dst, force=force, started=started)
