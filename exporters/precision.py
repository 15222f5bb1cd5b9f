"""Precision variants of an exported fp32 ACmix ONNX: float16 (mixed) and INT8 (Q/DQ).

Both read an fp32 artifact written by :func:`exporters.onnx.export_onnx` (its manifest in
``metadata_props``), write a new ONNX plus ``<onnx>.json`` sidecar atomically, and prove the result
against the fp32 model in ONNX Runtime on seeded random inputs (and, optionally, on an image folder).

* :func:`to_fp16`: weights and compute in float16 except the ops whose precision matters
  (LayerNormalization, Softmax, reductions: kept float32 behind Cast nodes); float32 graph inputs
  and outputs. Written directly with ``onnx`` (no converter dependency). Manifest precision
  ``"mixed"`` (``"fp16"`` when nothing stays float32). TensorRT builds it strongly typed.
* :func:`to_int8`: ONNX Runtime static quantization (calibrated on preprocessed images). Target
  ``"cpu"``: QOperator, U8 activations / S8 weights (ORT CPU's fast integer kernels); target
  ``"tensorrt"``: QDQ, symmetric S8 activations and weights (zero point 0) on Conv/MatMul/Gemm only.
  An optional sensitivity pass keeps in float the few nodes whose quantization hurts agreement most.
  Manifest precision ``"int8"``.

What runs where (onnxruntime 1.32, CPU EP): the fp16 graph loads and runs; ORT's CPU EP has
float16 kernels for only some ops and inserts Cast nodes around the rest (its ``InsertCastTransformer``),
so on CPU the fp16 model computes largely in float32 on float16-rounded tensors: a valid check of
the rounding of weights and activations, not of fp16 accumulation (TensorRT/GPUs accumulate fp16
matrix products in float32, which this approximates). :func:`ort_cpu_fp16_coverage` reports it.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.fileio import check_writable
from acmix_deploy.manifest import MANIFEST_KEY, Manifest, ManifestError, find_manifest, sidecar_path
from acmix_deploy.parity import Tolerance, compare_outputs, random_inputs

from .graph import op_histogram, save_with_manifest
from .validate import ParityError

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0
DEFAULT_KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceL2", "Pow", "Sqrt")
# Ops that only move data: they take the precision of their input instead of forcing one (no casts).
_FOLLOW_OPS = frozenset(
    {"Reshape", "Transpose", "Slice", "Split", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand", "Tile",
     "Gather", "Concat", "Pad", "MaxPool", "Relu", "DepthToSpace", "SpaceToDepth"}
)  # fmt: skip
# Float inputs that must stay float32 whatever the node's precision (by op and input index).
_FP32_SLOTS = {"Resize": {1, 2}, "Upsample": {1}}
_TYPE_AGNOSTIC = frozenset({"Shape", "Size"})
FP16_TOLERANCE = Tolerance(rtol=2e-2, min_cosine=0.9995, min_top1_agreement=0.9)
INT8_TARGETS = ("cpu", "tensorrt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
PARITY_BATCHES = (1, 2, 7)


class PrecisionError(AcmixDeployError):
    """The source cannot be converted, or the arguments are invalid."""


@dataclass
class PrecisionReport:
    path: Path
    precision: str
    source: str
    nodes: int
    ops: dict[str, int]
    size_bytes: int
    parity: dict
    accuracy: dict | None = None
    details: dict = field(default_factory=dict)
    speed: dict | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    def describe(self) -> str:
        p = self.parity
        text = (
            f"{self.precision}: max|diff| {p['max_abs_diff']:.3g} (ref scale {p['max_abs_ref']:.2f}), "
            f"cosine {p['cosine_min']:.5f}, top-1 agreement {p['top1_agreement']:.1%} vs fp32 on {p['inputs']}"
        )
        if self.accuracy:
            acc = self.accuracy
            text += (
                f"; top-1 {acc['top1_percent']:.2f}% (fp32 {acc['fp32_top1_percent']:.2f}%, "
                f"agreement {acc['top1_agreement_percent']:.2f}%)"
            )
        if self.speed:
            s = self.speed
            text += f"; ORT CPU batch 1: {s['variant_p50_ms']:.2f} ms vs fp32 {s['fp32_p50_ms']:.2f} ms"
            text += f" ({s['speedup_vs_fp32']:.2f}x)"
            if s["speedup_vs_fp32"] < 1.0:
                text += " - slower than fp32 on this CPU"
        return text


# --------------------------------------------------------------------------------------------- common


def _load_source(src: str | Path) -> tuple[onnx.ModelProto, Manifest]:
    src = Path(src)
    if not src.is_file():
        raise PrecisionError(f"{src}: no such ONNX file")
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise assorted types on garbage
        raise PrecisionError(f"{src}: not a readable ONNX model ({type(exc).__name__})") from None
    try:
        manifest = find_manifest({p.key: p.value for p in model.metadata_props}, src)
    except ManifestError as exc:
        raise PrecisionError(f"{src}: {exc}") from None
    if manifest is None:
        raise PrecisionError(f"{src}: not an acmix-deploy ONNX (no {MANIFEST_KEY} metadata and no sidecar)")
    if manifest.precision != "fp32":
        raise PrecisionError(f"{src}: precision is {manifest.precision!r}; convert from the fp32 export")
    if not manifest.batch.get("dynamic", True):
        raise PrecisionError(
            f"{src}: a fixed-batch export ({manifest.batch.get('max')}); fp16/int8 conversion validates and "
            "calibrates at several batch sizes, so export with a dynamic batch (no --batch)"
        )
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise PrecisionError(f"{src}: already quantized")
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node for a in n.attribute
    ):
        raise PrecisionError(f"{src}: graphs with control flow (If/Loop/Scan) are not supported")
    return model, manifest


def _manifest_dict(manifest: Manifest, precision: str, report: dict, extra: dict | None = None) -> dict:
    data = manifest.to_dict()
    data["precision"] = precision
    data["parity"] = {**data.get("parity", {}), f"onnxruntime_{precision}_vs_fp32_onnx": report["parity"]}
    data["precision_report"] = report
    if extra:
        data.update(extra)
    data["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return data


def _check_outputs(dst_onnx: str | Path, force: bool) -> Path:
    """Refuse before any work when the variant or its sidecar exists (without force) or cannot be written."""
    dst = Path(dst_onnx)
    check_writable(dst, force=force)
    check_writable(sidecar_path(dst), force=force)
    return dst


def _write(model: onnx.ModelProto, manifest_data: dict, dst: Path, force: bool) -> None:
    save_with_manifest(model, json.dumps(manifest_data, indent=2, default=str), dst, force=force)


def _write_report(
    model: onnx.ModelProto,
    manifest: Manifest,
    report: dict,
    extra: dict | None,
    src: str | Path,
    dst: Path,
    force: bool,
    started: float,
    fp32_run: Callable[[np.ndarray], np.ndarray],
    run: Callable[[np.ndarray], np.ndarray],
) -> PrecisionReport:
    """Write the variant with its updated manifest, and describe it: the common end of every conversion.

    ``fp32_run`` and ``run`` are the conversion's own ONNX Runtime sessions of the source and the
    variant; the speed measurement reuses them rather than loading both models again.
    """
    report["speed"] = _cpu_speed_vs_fp32(fp32_run, run, manifest.img_size)
    _write(model, _manifest_dict(manifest, report["precision"], report, extra), dst, force)
    return PrecisionReport(
        path=dst,
        precision=report["precision"],
        source=str(src),
        nodes=len(model.graph.node),
        ops=op_histogram(model),
        size_bytes=dst.stat().st_size,
        parity=report["parity"],
        accuracy=report["accuracy"],
        details=report["details"],
        speed=report["speed"],
        seconds=time.perf_counter() - started,
    )


def _cpu_speed_vs_fp32(
    fp32_run: Callable[[np.ndarray], np.ndarray],
    run: Callable[[np.ndarray], np.ndarray],
    img_size: int,
    rounds: int = 9,
) -> dict:
    """Batch-1 latency of the variant and its fp32 source in ONNX Runtime on this CPU, interleaved.

    Recorded so nobody ships an int8 model that is slower here than the fp32 one it replaces
    (without VNNI, or for small models, it often is). It says nothing about TensorRT on a GPU.
    """
    from acmix_deploy.profiling.interleaved import time_interleaved

    x = random_inputs(1, img_size, seed=11)
    stats = time_interleaved(
        {"fp32": lambda: fp32_run(x), "variant": lambda: run(x)},
        rounds=rounds,
        warmup=2,
    )
    a, b = stats["fp32"].p50, stats["variant"].p50
    return {
        "runtime": "onnxruntime CPUExecutionProvider",
        "batch": 1,
        "rounds": rounds,
        "fp32_p50_ms": round(a, 3),
        "variant_p50_ms": round(b, 3),
        "speedup_vs_fp32": round(a / b, 3),
    }


def _session(model: onnx.ModelProto | str | Path, threads: int = 0, optimized_path: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _runner(session) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _parity(
    ref: Callable, cand: Callable, size: int, tolerance: Tolerance, batches: Sequence[int] = PARITY_BATCHES
) -> tuple[dict, object]:
    xs = [random_inputs(b, size, seed=100 + i) for i, b in enumerate(batches)]
    report = compare_outputs([ref(x) for x in xs], [cand(x) for x in xs], list(batches), tolerance)
    return report.to_dict() | {"compared_with": "fp32 ONNX in onnxruntime CPU"}, report


def _accuracy(
    fp32: Callable, cand: Callable, data_dir: str | Path, manifest: Manifest, limit: int | None = None
) -> dict:
    """Top-1 of both models on an image folder and their agreement.

    Class = sorted folder index, or the index of the folder's name when the manifest names classes.
    """
    from acmix_deploy.evaluate import index_image_folder, labels_fit_folders
    from acmix_deploy.preprocess import preprocess

    index = index_image_folder(data_dir)
    if labels_fit_folders(manifest.labels, index.classes):
        index = index_image_folder(data_dir, manifest.labels)
    samples = index.samples[:limit] if limit else index.samples
    labels = np.array([label for _, label in samples])
    p32, pc = [], []
    for start in range(0, len(samples), 32):
        x = preprocess([path for path, _ in samples[start : start + 32]], manifest.preprocessing)
        p32.append(fp32(x).argmax(1))
        pc.append(cand(x).argmax(1))
    p32, pc = np.concatenate(p32), np.concatenate(pc)
    return {
        "data_dir": str(data_dir),
        "images": len(samples),
        "top1_percent": round(100.0 * float(np.mean(pc == labels)), 4),
        "fp32_top1_percent": round(100.0 * float(np.mean(p32 == labels)), 4),
        "top1_agreement_percent": round(100.0 * float(np.mean(pc == p32)), 4),
    }


# ----------------------------------------------------------------------------------------------- fp16


def _fp16_array(arr: np.ndarray, stats: dict) -> np.ndarray:
    finite = np.abs(arr[np.isfinite(arr)])
    stats["clipped"] += int(np.sum(finite > FP16_MAX))
    stats["flushed"] += int(np.sum((finite > 0) & (finite < 2.0**-24)))
    return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)


def convert_fp16(
    model: onnx.ModelProto, keep_fp32_ops: Sequence[str] = DEFAULT_KEEP_FP32_OPS
) -> tuple[onnx.ModelProto, dict]:
    """float32 -> float16 graph rewrite (in memory). Returns the new model and conversion statistics.

    Each node gets a precision: ops in ``keep_fp32_ops`` float32, data-movement ops follow their
    input, everything else float16. Float initializers become float16 where only float16 nodes use
    them (a float16 copy is added where both do); a Cast is inserted wherever a tensor's precision
    differs from its consumer's (one per tensor and direction); graph inputs and outputs stay float32.
    """
    keep = set(keep_fp32_ops)
    model = onnx.shape_inference.infer_shapes(copy.deepcopy(model), strict_mode=True)
    g = model.graph
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.value_info, *g.input, *g.output)}
    inits = {t.name: t for t in g.initializer}
    elem.update({name: t.data_type for name, t in inits.items()})
    graph_outputs = {o.name for o in g.output}

    def float_slots(node: onnx.NodeProto) -> list[int]:
        if node.op_type in _TYPE_AGNOSTIC:
            return []
        skip = _FP32_SLOTS.get(node.op_type, set())
        return [i for i, name in enumerate(node.input) if name and i not in skip and elem.get(name) == FLOAT]

    current: dict[str, int] = {i.name: FLOAT for i in g.input}  # precision of each produced float tensor
    plan: list[tuple[onnx.NodeProto, int]] = []
    for node in g.node:
        slots = float_slots(node)
        outs_float = any(elem.get(o) == FLOAT for o in node.output)
        if not slots and not outs_float:
            prec = None
        elif node.op_type in keep:
            prec = FLOAT
        elif node.op_type in _FOLLOW_OPS:
            produced = [current[node.input[i]] for i in slots if node.input[i] in current]
            prec = FLOAT if produced and all(p == FLOAT for p in produced) else HALF
        else:
            prec = HALF
        plan.append((node, prec))
        for o in node.output:
            if elem.get(o) == FLOAT:
                current[o] = prec if prec is not None else FLOAT

    # initializer precision: by what consumes it
    wants: dict[str, set[int]] = {}
    for node, prec in plan:
        for i in float_slots(node):
            if node.input[i] in inits:
                wants.setdefault(node.input[i], set()).add(prec)
    stats = {"clipped": 0, "flushed": 0, "initializers_fp16": 0, "initializers_fp32": 0, "casts": 0}
    half_name: dict[str, str] = {}
    new_inits = []
    for name, tensor in inits.items():
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
    g.initializer.extend(new_inits)

    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        if (name, to) not in casts:
            out = f"{name}__to_{'fp16' if to == HALF else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=f"{out}__cast", to=to))
            casts[(name, to)] = out
            stats["casts"] += 1
        return casts[(name, to)]

    for node, prec in plan:
        if prec is not None:
            for i in float_slots(node):
                name = node.input[i]
                if name in inits and inits[name].data_type == FLOAT:
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
    for name in graph_outputs:
        if current.get(name) == HALF:
            inner = f"{name}__fp16"
            for node in nodes:
                node.output[:] = [inner if o == name else o for o in node.output]
                node.input[:] = [inner if i == name else i for i in node.input]
            nodes.append(helper.make_node("Cast", [inner], [name], name=f"{name}__cast_out", to=FLOAT))
            stats["casts"] += 1
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    counts = {"fp16": 0, "fp32": 0}
    for _node, prec in plan:
        if prec is not None:
            counts["fp16" if prec == HALF else "fp32"] += 1
    stats["nodes_fp16"], stats["nodes_fp32"] = counts["fp16"], counts["fp32"]
    stats["fp32_ops"] = sorted({n.op_type for n, p in plan if p == FLOAT})
    return model, stats


def ort_cpu_fp16_coverage(model: onnx.ModelProto) -> dict:
    """How ONNX Runtime's CPU EP runs a float16 model: float16 nodes left after its graph transforms.

    ORT inserts Cast nodes around float16 nodes it has no CPU kernel for and runs them in float32;
    this counts, in the optimised graph ORT writes, the nodes computing in float16 per op type.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        _session(model, optimized_path=out)
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
    force: bool = False,
    tolerance: Tolerance = FP16_TOLERANCE,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    numpy_check: bool = True,
) -> PrecisionReport:
    """Write a float16 (mixed-precision) copy of an fp32 acmix-deploy ONNX, proven against it.

    Args:
        src_onnx: the fp32 ONNX (from :func:`exporters.onnx.export_onnx`).
        dst_onnx: the new ONNX; its manifest also goes to ``<dst>.json``.
        keep_fp32_ops: op types computed in float32 (behind Cast nodes).
        force: replace existing files.
        tolerance: parity bounds vs the fp32 model in ONNX Runtime (raise ParityError outside them).
        eval_dir: an image folder (one sub-folder per class) to measure accuracy and agreement on.
        eval_limit: at most this many images of ``eval_dir``.
        numpy_check: also run the float16 graph in ``onnx.reference`` (numpy, computing in float16
            dtype, i.e. float16-rounded arithmetic, stricter than fp32 accumulation) on one random
            input and record its difference from fp32: ORT CPU runs most float16 ops in float32.

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    t0 = time.perf_counter()
    dst = _check_outputs(dst_onnx, force)
    model, manifest = _load_source(src_onnx)
    try:
        converted, stats = convert_fp16(model, keep_fp32_ops)
        onnx.checker.check_model(converted, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PrecisionError(f"float16 conversion produced an invalid graph: {str(exc).splitlines()[0]}") from None
    precision = "mixed" if stats["nodes_fp32"] else "fp16"

    fp32_run = _runner(_session(model))
    try:
        session = _session(converted)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise PrecisionError(f"onnxruntime (CPU) cannot load the float16 model: {exc}") from None
    run = _runner(session)
    parity, parity_report = _parity(fp32_run, run, manifest.img_size, tolerance)
    accuracy = _accuracy(fp32_run, run, eval_dir, manifest, eval_limit) if eval_dir is not None else None
    coverage = ort_cpu_fp16_coverage(converted)
    details = {
        "keep_fp32_ops": list(keep_fp32_ops),
        "conversion": stats,
        "onnxruntime_cpu": coverage
        | {
            "note": "ORT CPU runs float16 nodes it has no kernel for in float32 between inserted Casts: parity "
            "here checks float16 weight/activation rounding; accumulation precision is the runtime's (TensorRT: fp32)"
        },
    }
    if numpy_check:
        from onnx.reference import ReferenceEvaluator

        x = random_inputs(1, manifest.img_size, seed=321)
        ref, out = fp32_run(x), ReferenceEvaluator(converted).run(None, {manifest.input_name: x})[0]
        details["numpy_fp16_reference"] = compare_outputs([ref], [out], [1], tolerance).to_dict() | {
            "inputs": "standard normal, seeded (1 image)",
            "runtime": "onnx.reference.ReferenceEvaluator (numpy, float16 arithmetic)",
        }
    report = {"precision": precision, "parity": parity, "accuracy": accuracy, "details": details}
    if not parity_report.passed:
        raise ParityError(f"float16 model out of tolerance vs fp32: {parity_report.describe()}", parity_report)
    return _write_report(converted, manifest, report, None, src_onnx, dst, force, t0, fp32_run, run)


# ----------------------------------------------------------------------------------------------- int8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
QUANT_OPS = ("Conv", "MatMul", "Gemm")
INT8_MIN_AGREEMENT = 0.9  # top-1 agreement with fp32 on the calibration images below which to_int8 fails
SENSITIVITY_GAIN = 0.25  # keep a node group in float only if that cuts the logit error by >= 25%


def calibration_images(source, manifest: Manifest, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` preprocessed images (NCHW float32): from an array, or drawn (seeded) from an image folder."""
    from acmix_deploy.preprocess import preprocess

    if isinstance(source, np.ndarray):
        if source.ndim != 4 or source.shape[1:] != (3, manifest.img_size, manifest.img_size):
            raise PrecisionError(
                f"calibration array has shape {source.shape}; expected (N, 3, {manifest.img_size}, {manifest.img_size})"
            )
        if not np.issubdtype(source.dtype, np.floating) or not np.isfinite(source).all():
            raise PrecisionError("calibration array must be finite floats (preprocessed images)")
        return np.ascontiguousarray(source[:samples], dtype=np.float32)
    root = Path(source)
    if not root.is_dir():
        raise PrecisionError(f"calibration folder {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    if not files:
        raise PrecisionError(f"no images under {root}")
    order = np.random.default_rng(seed).permutation(len(files))[:samples]  # class folders are sorted: mix them
    return preprocess([files[i] for i in sorted(order)], manifest.preprocessing)


class _Reader:
    """ONNX Runtime CalibrationDataReader over preprocessed images, in batches."""

    def __init__(self, images: np.ndarray, input_name: str, batch: int = 16) -> None:
        from onnxruntime.quantization import CalibrationDataReader

        class Reader(CalibrationDataReader):
            def __init__(inner) -> None:
                inner.batches = [images[i : i + batch] for i in range(0, len(images), batch)]
                inner.pos = 0

            def get_next(inner):
                if inner.pos >= len(inner.batches):
                    return None
                inner.pos += 1
                return {input_name: inner.batches[inner.pos - 1]}

            def __len__(inner) -> int:
                return len(inner.batches)

            def rewind(inner) -> None:
                inner.pos = 0

        self.reader = Reader()


def _int8_settings(target: str, cpu_format: str) -> dict:
    from onnxruntime.quantization import QuantFormat, QuantType

    if target == "tensorrt":
        return {
            "quant_format": QuantFormat.QDQ,
            "activation_type": QuantType.QInt8,
            "weight_type": QuantType.QInt8,
            # TensorRT's Q/DQ takes INT8 weights and activations; biases stay float (no INT32 DequantizeLinear).
            "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
            "describe": "QDQ, S8 activations and weights, symmetric (zero point 0), float biases",
        }
    fmt = QuantFormat.QOperator if cpu_format == "qoperator" else QuantFormat.QDQ
    return {
        "quant_format": fmt,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "extra_options": {},
        "describe": f"{cpu_format.upper() if cpu_format == 'qdq' else 'QOperator'}, U8 activations, S8 weights",
    }


def sensitivity_candidates(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Groups of node names commonly hurt by quantization: first conv, classifier, attention MatMuls."""
    nodes = [n for n in model.graph.node if n.op_type in QUANT_OPS]
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    passthrough = {"Add", "Reshape", "Transpose", "Mul", "Div", "Squeeze", "Unsqueeze"}
    attention: list[str] = []
    for sm in (n for n in model.graph.node if n.op_type == "Softmax"):
        node, hops = producer.get(sm.input[0]), 0
        while node is not None and node.op_type in passthrough and hops < 6:
            node, hops = producer.get(node.input[0]), hops + 1
        if node is not None and node.op_type == "MatMul":
            attention.append(node.name)
        frontier, hops = list(consumers.get(sm.output[0], [])), 0
        while frontier and hops < 6:
            nxt = []
            for c in frontier:
                if c.op_type == "MatMul":
                    attention.append(c.name)
                elif c.op_type in passthrough:
                    nxt.extend(consumers.get(c.output[0], []))
            frontier, hops = nxt, hops + 1
    groups = {
        "first_conv": [nodes[0].name] if nodes and nodes[0].op_type == "Conv" else [],
        "classifier": [nodes[-1].name] if nodes and nodes[-1].op_type in ("Gemm", "MatMul") else [],
        "attention_matmuls": sorted(set(attention)),
    }
    return {k: v for k, v in groups.items() if v}


def to_int8(
    src_onnx: str | Path,
    dst_onnx: str | Path,
    *,
    calibration: np.ndarray | str | Path,
    target: str = "cpu",
    method: str = "minmax",
    samples: int = 256,
    per_channel: bool = True,
    exclude_nodes: Sequence[str] | None = None,
    sensitivity: bool = True,
    sensitivity_budget: int = 5,
    cpu_format: str = "qoperator",
    min_agreement: float = INT8_MIN_AGREEMENT,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    force: bool = False,
) -> PrecisionReport:
    """Write a statically quantized INT8 copy of an fp32 acmix-deploy ONNX (ONNX Runtime quantization).

    Args:
        src_onnx: the fp32 ONNX.
        dst_onnx: the new ONNX; its manifest also goes to ``<dst>.json``.
        calibration: preprocessed images (N, 3, S, S) or an image folder (searched recursively;
            preprocessed with the manifest's preprocessing; ``samples`` drawn with a fixed seed).
        target: ``"cpu"`` (ORT CPU: U8 activations, S8 weights) or ``"tensorrt"`` (QDQ, symmetric S8).
        method: calibration ``"minmax"``, ``"entropy"`` or ``"percentile"`` (99.999).
        samples: calibration images used.
        per_channel: per-output-channel weight scales.
        exclude_nodes: node names kept in float (names of the pre-processed graph; see the report).
        sensitivity: try keeping in float each group of usually sensitive nodes (first conv,
            classifier, attention MatMuls; ``sensitivity_budget`` groups at most, plus one run of the
            union of the helpful ones); a group stays float when it keeps the top-1 agreement with
            fp32 on the calibration images and cuts the logits' normalised squared error by >= 25%.
            Calibration runs once (cached); each try costs one quantization and one pass over the images.
        cpu_format: ``"qoperator"`` (QLinearConv/QLinearMatMul, default: faster on ORT CPU) or ``"qdq"``.
        min_agreement: fail (ParityError) below this top-1 agreement with fp32 on the calibration images.
        eval_dir, eval_limit: an image folder to report accuracy and agreement on.
        force: replace existing files.

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    t0 = time.perf_counter()
    if target not in INT8_TARGETS:
        raise PrecisionError(f"unknown int8 target {target!r}; choose from {', '.join(INT8_TARGETS)}")
    if method not in CALIBRATION_METHODS:
        raise PrecisionError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    if cpu_format not in ("qoperator", "qdq"):
        raise PrecisionError(f"unknown cpu_format {cpu_format!r}; choose qoperator or qdq")
    if samples < 1:
        raise PrecisionError(f"samples must be >= 1, got {samples}")
    dst = _check_outputs(dst_onnx, force)
    model, manifest = _load_source(src_onnx)
    images = calibration_images(calibration, manifest, samples)

    from onnxruntime.quantization import CalibrationMethod, quant_pre_process, quantize_static

    calib_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    settings = _int8_settings(target, cpu_format)
    fp32_run = _runner(_session(model))
    ref_logits = np.concatenate([fp32_run(images[i : i + 32]) for i in range(0, len(images), 32)])
    runs: list[dict] = []

    with tempfile.TemporaryDirectory(prefix="acmix-int8.") as tmp:
        src_tmp, pre_tmp, cache = Path(tmp) / "src.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "calib.json"
        src_tmp.write_bytes(model.SerializeToString())
        try:
            quant_pre_process(str(src_tmp), str(pre_tmp), skip_symbolic_shape=False)
        except Exception as exc:  # noqa: BLE001 - pre-processing raises assorted types
            raise PrecisionError(f"quantization pre-processing failed: {type(exc).__name__}: {exc}") from None
        pre_model = onnx.load(str(pre_tmp))
        names = {n.name for n in pre_model.graph.node}
        unknown = sorted(set(exclude_nodes or ()) - names)
        if unknown:
            raise PrecisionError(f"exclude_nodes not in the graph: {', '.join(unknown[:5])}")

        def quantize(excluded: Sequence[str]) -> tuple[onnx.ModelProto, float, float]:
            out = Path(tmp) / f"q{len(runs)}.onnx"
            extra = {"CalibPercentile": 99.999} if method == "percentile" else {}
            try:
                quantize_static(
                    str(pre_tmp),
                    str(out),
                    _Reader(images, manifest.input_name).reader,
                    quant_format=settings["quant_format"],
                    op_types_to_quantize=list(QUANT_OPS),
                    per_channel=per_channel,
                    activation_type=settings["activation_type"],
                    weight_type=settings["weight_type"],
                    nodes_to_exclude=list(excluded),
                    calibrate_method=calib_method,
                    extra_options={**settings["extra_options"], **extra},
                    calibration_cache_path=str(cache),
                )
            except Exception as exc:  # noqa: BLE001 - the quantizer raises assorted types
                raise PrecisionError(f"quantize_static failed: {type(exc).__name__}: {exc}") from None
            qmodel = onnx.load(str(out))
            run = _runner(_session(qmodel))
            logits = np.concatenate([run(images[i : i + 32]) for i in range(0, len(images), 32)])
            agree = float(np.mean(logits.argmax(1) == ref_logits.argmax(1)))
            nmse = float(np.mean((logits - ref_logits) ** 2) / max(float(np.mean(ref_logits**2)), 1e-30))
            runs.append({"excluded": list(excluded), "calib_top1_agreement": agree, "calib_logit_nmse": nmse})
            return qmodel, (agree, -nmse)

        base_excluded = list(exclude_nodes or ())
        best_model, best_score = quantize(base_excluded)
        best_excluded, search = base_excluded, {"ran": False}
        if sensitivity and sensitivity_budget > 0:
            # Score: top-1 agreement with fp32 on the calibration images, then the logits' normalised
            # squared error. A group stays float only if it cuts that error by SENSITIVITY_GAIN or more.
            groups = sensitivity_candidates(pre_model)
            search = {"ran": True, "groups": groups, "nmse": {"none": -best_score[1]}}
            base_score, helpful = best_score, []
            for name, group in list(groups.items())[:sensitivity_budget]:
                qm, score = quantize(base_excluded + group)
                search["nmse"][name] = -score[1]
                if score[0] >= base_score[0] and -score[1] <= (1 - SENSITIVITY_GAIN) * -base_score[1]:
                    helpful.append(name)
                    if score > best_score:
                        best_model, best_score, best_excluded = qm, score, base_excluded + group
            if len(helpful) > 1 and len(groups) < sensitivity_budget:
                union = base_excluded + [n for g in helpful for n in groups[g]]
                qm, score = quantize(union)
                search["nmse"]["+".join(helpful)] = -score[1]
                if score > best_score:
                    best_model, best_score, best_excluded = qm, score, union
            search["kept_float"] = [n for n in best_excluded if n not in base_excluded]

    run = _runner(_session(best_model))
    random_parity, _ = _parity(
        fp32_run, run, manifest.img_size, Tolerance(rtol=np.inf, min_cosine=0.0, min_top1_agreement=0.0)
    )
    calib_report = compare_outputs(
        [ref_logits],
        [np.concatenate([run(images[i : i + 32]) for i in range(0, len(images), 32)])],
        [len(images)],
        Tolerance(rtol=np.inf, min_cosine=0.0, min_top1_agreement=min_agreement),
    )
    accuracy = _accuracy(fp32_run, run, eval_dir, manifest, eval_limit) if eval_dir is not None else None
    qdq = [n for n in best_model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    details = {
        "int8_target": target,
        "format": settings["describe"],
        "op_types_quantized": list(QUANT_OPS),
        "per_channel": per_channel,
        "calibration": {
            "method": method,
            "samples": len(images),
            "source": "array" if isinstance(calibration, np.ndarray) else str(calibration),
            **({"percentile": 99.999} if method == "percentile" else {}),
        },
        "excluded_nodes": best_excluded,
        "sensitivity": search,
        "quantizations": runs,
        "random_inputs_parity": random_parity
        | {"note": "standard-normal inputs lie far outside the calibrated ranges: clipped, not representative"},
        "quantized_ops": op_histogram(best_model),
        "qdq_nodes": len(qdq),
    }
    parity = calib_report.to_dict() | {
        "inputs": f"the {len(images)} calibration images",
        "compared_with": "fp32 ONNX in onnxruntime CPU",
    }
    report = {"precision": "int8", "parity": parity, "accuracy": accuracy, "details": details}
    if not calib_report.passed:
        raise ParityError(
            f"int8 model agrees with fp32 on {calib_report.top1_agreement:.1%} of the calibration images "
            f"(< {min_agreement:.0%}); try method='entropy' or 'percentile', more samples, or exclude_nodes",
            calib_report,
        )
    extra = {"int8_target": target, "calibration": details["calibration"]}
    return _write_report(best_model, manifest, report, extra, src_onnx, dst, force, t0, fp32_run, run)


DYNAMIC_TOLERANCE = Tolerance(rtol=np.inf, min_cosine=0.99, min_top1_agreement=0.8)


def to_int8_dynamic(
    src_onnx: str | Path,
    dst_onnx: str | Path,
    *,
    tolerance: Tolerance = DYNAMIC_TOLERANCE,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    force: bool = False,
) -> PrecisionReport:
    """ONNX Runtime dynamic quantization: MatMul/Gemm weights in S8, activations quantized per call.

    No calibration: each activation's range is measured at run time, so random inputs are a fair
    parity check. On ORT CPU this is the fastest int8 form measured for Swin-ACmix (DESIGN.md §3;
    ``scripts/bench_int8_fullsize.py``): its cost is in the Linear layers, which this quantizes,
    while the convolutions stay float. It is an ORT CPU format (``DynamicQuantizeLinear``,
    ``MatMulInteger``): TensorRT needs ``to_int8(target="tensorrt")``.

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    t0 = time.perf_counter()
    dst = _check_outputs(dst_onnx, force)
    model, manifest = _load_source(src_onnx)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="acmix-int8dyn.") as tmp:
        src_tmp, out_tmp = Path(tmp) / "src.onnx", Path(tmp) / "dyn.onnx"
        src_tmp.write_bytes(model.SerializeToString())
        try:
            quantize_dynamic(
                str(src_tmp), str(out_tmp), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
            )
        except Exception as exc:  # noqa: BLE001 - the quantizer raises assorted types
            raise PrecisionError(f"quantize_dynamic failed: {type(exc).__name__}: {exc}") from None
        quantized = onnx.load(str(out_tmp))
    fp32_run = _runner(_session(model))
    run = _runner(_session(quantized))
    parity, parity_report = _parity(fp32_run, run, manifest.img_size, tolerance)
    accuracy = _accuracy(fp32_run, run, eval_dir, manifest, eval_limit) if eval_dir is not None else None
    details = {
        "int8_target": "cpu-dynamic",
        "format": "ONNX Runtime dynamic quantization: S8 weights of MatMul/Gemm, U8 activations per call",
        "quantized_ops": op_histogram(quantized),
    }
    report = {"precision": "int8", "parity": parity, "accuracy": accuracy, "details": details}
    if not parity_report.passed:
        raise ParityError(f"dynamic int8 model out of tolerance vs fp32: {parity_report.describe()}", parity_report)
    extra = {"int8_target": "cpu-dynamic", "calibration": None}
    return _write_report(quantized, manifest, report, extra, src_onnx, dst, force, t0, fp32_run, run)


__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_KEEP_FP32_OPS",
    "INT8_TARGETS",
    "PrecisionError",
    "PrecisionReport",
    "calibration_images",
    "convert_fp16",
    "ort_cpu_fp16_coverage",
    "sensitivity_candidates",
    "to_fp16",
    "to_int8",
    "to_int8_dynamic",
]
