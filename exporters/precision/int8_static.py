"""Statically quantized INT8 variant of an fp32 ONNX (ONNX Runtime quantization, calibrated).

Two targets, because the fast int8 forms of the two runtimes differ. ``"cpu"``: QOperator
(QLinearConv/QLinearMatMul), U8 activations and S8 weights, ONNX Runtime CPU's fast integer
kernels (QDQ on request). ``"tensorrt"``: QDQ with symmetric S8 activations and weights (zero
point 0) on Conv/MatMul/Gemm only, the form TensorRT's explicit quantization takes. Calibration
runs once on preprocessed images (an array, or an image folder preprocessed as the manifest
says) and is cached, so the sensitivity pass (:mod:`.sensitivity`) costs one quantization and
one pass over the images per try. The result must agree with fp32 on the calibration images.
Manifest precision ``"int8"``, with ``int8_target`` and ``calibration`` recorded.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from acmix_deploy.manifest import Manifest
from acmix_deploy.parity import Tolerance, compare_outputs

from ..graph import op_histogram
from ..validate import ParityError
from .common import (
    COMPARED_WITH,
    QUANT_OPS,
    Fp32Source,
    PrecisionError,
    PrecisionReport,
    ProvenVariant,
    check_outputs,
    cpu_runner,
    folder_accuracy,
    load_fp32_source,
    random_parity,
    run_batched,
    write_variant,
)
from .sensitivity import QuantizationRun, search_sensitive_groups, sensitivity_candidates

INT8_TARGETS = ("cpu", "tensorrt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CPU_FORMATS = ("qoperator", "qdq")
CALIB_PERCENTILE = 99.999
INT8_MIN_AGREEMENT = 0.9  # top-1 agreement with fp32 on the calibration images below which to_int8 fails
_ANY = Tolerance(rtol=np.inf, min_cosine=0.0, min_top1_agreement=0.0)  # measure only


@dataclass(frozen=True)
class Int8Options:
    """The knobs of a static int8 conversion, checked when made.

    Attributes:
        target: ``"cpu"`` (ORT CPU: U8 activations, S8 weights) or ``"tensorrt"`` (QDQ, symmetric S8).
        method: calibration ``"minmax"``, ``"entropy"`` or ``"percentile"`` (99.999).
        samples: calibration images used.
        per_channel: per-output-channel weight scales.
        exclude_nodes: node names kept in float (names of the pre-processed graph; see the report).
        sensitivity: run the sensitivity pass (:func:`.sensitivity.search_sensitive_groups`).
        sensitivity_budget: at most this many candidate groups tried (plus the union of the helpful ones).
        cpu_format: ``"qoperator"`` (QLinearConv/QLinearMatMul: faster on ORT CPU) or ``"qdq"``; target cpu only.
        min_agreement: fail (ParityError) below this top-1 agreement with fp32 on the calibration images.

    Raises:
        PrecisionError: an unknown choice or an out-of-range number.
    """

    target: str = "cpu"
    method: str = "minmax"
    samples: int = 256
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = field(default_factory=tuple)
    sensitivity: bool = True
    sensitivity_budget: int = 5
    cpu_format: str = "qoperator"
    min_agreement: float = INT8_MIN_AGREEMENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes or ()))
        for name, value, choices in (
            ("int8 target", self.target, INT8_TARGETS),
            ("calibration method", self.method, CALIBRATION_METHODS),
            ("cpu_format", self.cpu_format, CPU_FORMATS),
        ):
            if value not in choices:
                raise PrecisionError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        if self.samples < 1:
            raise PrecisionError(f"samples must be >= 1, got {self.samples}")
        if self.sensitivity_budget < 0:
            raise PrecisionError(f"sensitivity_budget must be >= 0, got {self.sensitivity_budget}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise PrecisionError(f"min_agreement must be within 0..1, got {self.min_agreement}")


def calibration_images(source, manifest: Manifest, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` preprocessed images (NCHW float32): from an array, or drawn (seeded) from an image folder."""
    from acmix_deploy.imagefolder import images_under
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
    files = sorted(images_under(root))  # the files evaluate would see, in a fixed order
    if not files:
        raise PrecisionError(f"no images under {root}")
    order = np.random.default_rng(seed).permutation(len(files))[:samples]  # class folders are sorted: mix them
    return preprocess([files[i] for i in sorted(order)], manifest.preprocessing)


def _calibration_reader(images: np.ndarray, input_name: str, batch: int = 16):
    """An ONNX Runtime ``CalibrationDataReader`` over preprocessed images, ``batch`` at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = [images[i : i + batch] for i in range(0, len(images), batch)]
            self.pos = 0

        def get_next(self) -> dict | None:
            if self.pos >= len(self.batches):
                return None
            self.pos += 1
            return {input_name: self.batches[self.pos - 1]}

        def __len__(self) -> int:
            return len(self.batches)

        def rewind(self) -> None:
            self.pos = 0

    return Reader()


def _quantizer_arguments(options: Int8Options) -> tuple[dict, str]:
    """``quantize_static`` keyword arguments for the options' target and format, and their description."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    extra = {"CalibPercentile": CALIB_PERCENTILE} if options.method == "percentile" else {}
    if options.target == "tensorrt":
        # TensorRT's Q/DQ takes INT8 weights and activations; biases stay float (no INT32 DequantizeLinear).
        fmt, activation = QuantFormat.QDQ, QuantType.QInt8
        extra |= {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
        describe = "QDQ, S8 activations and weights, symmetric (zero point 0), float biases"
    else:
        qoperator = options.cpu_format == "qoperator"
        fmt, activation = (QuantFormat.QOperator if qoperator else QuantFormat.QDQ), QuantType.QUInt8
        describe = f"{'QOperator' if qoperator else 'QDQ'}, U8 activations, S8 weights"
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[options.method]
    kwargs = {
        "quant_format": fmt,
        "activation_type": activation,
        "weight_type": QuantType.QInt8,
        "op_types_to_quantize": list(QUANT_OPS),
        "per_channel": options.per_channel,
        "calibrate_method": method,
        "extra_options": extra,
    }
    return kwargs, describe


class StaticQuantizer:
    """``quantize_static`` over one pre-processed graph, calibrated once (cached), each run scored vs fp32.

    Lives in a temporary folder (``workdir``): the pre-processed graph, the calibration cache and
    every quantized model. ``runs`` records each quantization, in order, for the report.
    """

    def __init__(self, source: Fp32Source, images: np.ndarray, options: Int8Options, workdir: Path) -> None:
        self.images, self.options, self.workdir = images, options, workdir
        self.input_name = source.manifest.input_name
        self.ref_logits = run_batched(source.run, images)
        self.kwargs, self.describe = _quantizer_arguments(options)
        self.runs: list[QuantizationRun] = []
        self.pre_path, self.cache = workdir / "pre.onnx", workdir / "calib.json"
        self.pre_model = self._pre_process(source.model)

    def _pre_process(self, model: onnx.ModelProto) -> onnx.ModelProto:
        from onnxruntime.quantization import quant_pre_process

        src = self.workdir / "src.onnx"
        src.write_bytes(model.SerializeToString())
        try:
            quant_pre_process(str(src), str(self.pre_path), skip_symbolic_shape=False)
        except Exception as exc:  # noqa: BLE001 - pre-processing raises assorted types
            raise PrecisionError(f"quantization pre-processing failed: {type(exc).__name__}: {exc}") from None
        return onnx.load(str(self.pre_path))

    def quantize(self, excluded: Sequence[str]) -> QuantizationRun:
        """Quantize keeping ``excluded`` nodes in float; score it on the calibration images."""
        from onnxruntime.quantization import quantize_static

        out = self.workdir / f"q{len(self.runs)}.onnx"
        reader = _calibration_reader(self.images, self.input_name)
        try:
            quantize_static(
                str(self.pre_path),
                str(out),
                reader,
                nodes_to_exclude=list(excluded),
                calibration_cache_path=str(self.cache),
                **self.kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - the quantizer raises assorted types
            raise PrecisionError(f"quantize_static failed: {type(exc).__name__}: {exc}") from None
        model = onnx.load(str(out))
        logits = run_batched(cpu_runner(model), self.images)
        ref = self.ref_logits
        agreement = float(np.mean(logits.argmax(1) == ref.argmax(1)))
        nmse = float(np.mean((logits - ref) ** 2) / max(float(np.mean(ref**2)), 1e-30))
        run = QuantizationRun(model, tuple(excluded), agreement, nmse)
        self.runs.append(run)
        return run


def _quantize_best(quantizer: StaticQuantizer, options: Int8Options) -> tuple[QuantizationRun, dict]:
    """The baseline quantization, improved by the sensitivity pass when asked for."""
    names = {n.name for n in quantizer.pre_model.graph.node}
    unknown = sorted(set(options.exclude_nodes) - names)
    if unknown:
        raise PrecisionError(f"exclude_nodes not in the graph: {', '.join(unknown[:5])}")
    baseline = quantizer.quantize(options.exclude_nodes)
    if not (options.sensitivity and options.sensitivity_budget > 0):
        return baseline, {"ran": False}
    groups = sensitivity_candidates(quantizer.pre_model)
    return search_sensitive_groups(quantizer.quantize, baseline, groups, options.sensitivity_budget)


def quantize_int8(
    src_onnx: str | Path,
    dst_onnx: str | Path,
    calibration: np.ndarray | str | Path,
    options: Int8Options,
    *,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    force: bool = False,
) -> PrecisionReport:
    """:func:`to_int8` with its knobs in one :class:`Int8Options` (same arguments, same result)."""
    started = time.perf_counter()
    dst = check_outputs(dst_onnx, force)
    source = load_fp32_source(src_onnx)
    images = calibration_images(calibration, source.manifest, options.samples)
    with tempfile.TemporaryDirectory(prefix="acmix-int8.") as tmp:
        quantizer = StaticQuantizer(source, images, options, Path(tmp))
        best, search = _quantize_best(quantizer, options)

    run = cpu_runner(best.model)
    random_report, _ = random_parity(source.run, run, source.manifest.img_size, _ANY)
    calib = compare_outputs(
        [quantizer.ref_logits],
        [run_batched(run, images)],
        [len(images)],
        Tolerance(rtol=np.inf, min_cosine=0.0, min_top1_agreement=options.min_agreement),
        inputs=f"the {len(images)} calibration images",
    )
    if not calib.passed:
        raise ParityError(
            f"int8 model agrees with fp32 on {calib.top1_agreement:.1%} of the calibration images "
            f"(< {options.min_agreement:.0%}); try method='entropy' or 'percentile', more samples, or exclude_nodes",
            calib,
        )
    record = {
        "method": options.method,
        "samples": len(images),
        "source": "array" if isinstance(calibration, np.ndarray) else str(calibration),
        **({"percentile": CALIB_PERCENTILE} if options.method == "percentile" else {}),
    }
    details = {
        "int8_target": options.target,
        "format": quantizer.describe,
        "op_types_quantized": list(QUANT_OPS),
        "per_channel": options.per_channel,
        "calibration": record,
        "excluded_nodes": list(best.excluded),
        "sensitivity": search,
        "quantizations": [r.record() for r in quantizer.runs],
        "random_inputs_parity": random_report
        | {"note": "standard-normal inputs lie far outside the calibrated ranges: clipped, not representative"},
        "quantized_ops": op_histogram(best.model),
        "qdq_nodes": sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in best.model.graph.node),
    }
    parity = calib.to_dict() | {"compared_with": COMPARED_WITH}
    accuracy = folder_accuracy(source.run, run, eval_dir, source.manifest, eval_limit) if eval_dir is not None else None
    variant = ProvenVariant(
        best.model, "int8", parity, run, accuracy, details, int8_target=options.target, calibration=record
    )
    return write_variant(source, variant, dst, force=force, started=started)


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
        target, method, samples, per_channel, exclude_nodes, sensitivity, sensitivity_budget,
            cpu_format, min_agreement: the conversion's knobs, as in :class:`Int8Options`. The
            sensitivity pass tries keeping in float each group of usually sensitive nodes (first
            conv, classifier, attention MatMuls; ``sensitivity_budget`` groups at most, plus one run
            of the union when several help); a group stays float when it keeps the top-1 agreement
            with fp32 on the calibration images and cuts the logits' normalised squared error by >= 25%.
        eval_dir, eval_limit: an image folder to report accuracy and agreement on.
        force: replace existing files.

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    options = Int8Options(
        target=target,
        method=method,
        samples=samples,
        per_channel=per_channel,
        exclude_nodes=tuple(exclude_nodes or ()),
        sensitivity=sensitivity,
        sensitivity_budget=sensitivity_budget,
        cpu_format=cpu_format,
        min_agreement=min_agreement,
    )
    return quantize_int8(
        src_onnx, dst_onnx, calibration, options, eval_dir=eval_dir, eval_limit=eval_limit, force=force
    )
