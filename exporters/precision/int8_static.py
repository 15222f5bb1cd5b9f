"""Statically quantized INT8 variant of an fp32 ONNX (ONNX Runtime quantization, calibrated).

Two targets, because the fast int8 forms of the two runtimes differ. ``"cpu"``: QOperator
(QLinearConv/QLinearMatMul), U8 activations and S8 weights, ONNX Runtime CPU's fast integer
kernels (QDQ on request). ``"tensorrt"``: QDQ with symmetric S8 activations and weights (zero
point 0) on Conv/MatMul/Gemm only, the form TensorRT's explicit quantization takes. Calibration
runs once on preprocessed images (an array, or an image folder preprocessed as the manifest
says) and is cached, so the sensitivity pass (:mod:`.sensitivity`) costs one quantization and
one pass over the images per try. The result is judged on held-out images, never the ones it was
calibrated on (``eval_dir`` when given, else a seeded share of the calibration source that
calibration does not read: :func:`split_calibration`), against :data:`INT8_TOLERANCE`; outside it
nothing is written. Manifest precision ``"int8"``, with ``int8_target`` and ``calibration`` recorded.
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
from acmix_deploy.parity import PRECISION_TOLERANCES, Tolerance, compare_outputs

from ..graph import op_histogram
from ..validate import ParityError
from .blocks import keep_fp32_nodes
from .common import (
    QUANT_OPS,
    Fp32Source,
    HeldOut,
    PrecisionError,
    PrecisionReport,
    ProvenVariant,
    check_outputs,
    cpu_runner,
    folder_accuracy,
    folder_files,
    folder_heldout,
    heldout_parity,
    load_fp32_source,
    random_parity,
    run_batched,
    split_holdout,
    write_variant,
)
from .sensitivity import QuantizationRun, search_sensitive_groups, sensitivity_candidates

INT8_TARGETS = ("cpu", "tensorrt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CPU_FORMATS = ("qoperator", "qdq")
CALIB_PERCENTILE = 99.999
# Held-out images vs fp32. Measured on the shipped digits ACmix-ResNet-26, calibrated on 256 training images
# (minmax), judged on the 256 held-out ones / 256 test images (max|diff| as a share of the logit scale,
# worst cosine, top-1 agreement): default (sensitivity pass on) cpu 0.074/0.107, 0.989/0.976, 100%/99.6%;
# tensorrt 0.147/0.138, 0.960/0.959, 100%/98.8%. Without the sensitivity pass, tensorrt: 0.405/0.243,
# 0.874/0.819, 100%/99.2%. The bounds leave 3-5x the default's error; wrecked calibration measures >2, <0.
# Reproduce: .venv/bin/python scripts/precision_heldout.py --out /tmp/heldout
INT8_TOLERANCE = PRECISION_TOLERANCES["int8"]
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
        keep_fp32: stages/blocks/branches kept in float (``layer2.0``, ``stem/head``: the names
            ``profile`` and ``sensitivity`` print), recorded in the manifest's ``kept_fp32``.
        sensitivity: run the sensitivity pass (:func:`.sensitivity.search_sensitive_groups`).
        sensitivity_budget: at most this many candidate groups tried (plus the union of the helpful ones).
        cpu_format: ``"qoperator"`` (QLinearConv/QLinearMatMul: faster on ORT CPU) or ``"qdq"``; target cpu only.
        tolerance: fail (ParityError, nothing written) outside these bounds vs fp32 on the held-out
            images (``MEASURE_ONLY`` records without failing).

    Raises:
        PrecisionError: an unknown choice or an out-of-range number.
    """

    target: str = "cpu"
    method: str = "minmax"
    samples: int = 256
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = field(default_factory=tuple)
    keep_fp32: tuple[str, ...] = field(default_factory=tuple)
    sensitivity: bool = True
    sensitivity_budget: int = 5
    cpu_format: str = "qoperator"
    tolerance: Tolerance = INT8_TOLERANCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes or ()))
        object.__setattr__(self, "keep_fp32", tuple(self.keep_fp32 or ()))
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
        if not 0.0 <= self.tolerance.min_top1_agreement <= 1.0:
            raise PrecisionError(f"min_top1_agreement must be within 0..1, got {self.tolerance.min_top1_agreement}")


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
    files = folder_files(source, "calibration")  # the files evaluate would see, in a fixed order
    order = np.random.default_rng(seed).permutation(len(files))[:samples]  # class folders are sorted: mix them
    return preprocess([files[i] for i in sorted(order)], manifest.preprocessing)


def split_calibration(
    source, manifest: Manifest, samples: int, eval_dir: str | Path | None = None, seed: int = 0
) -> tuple[np.ndarray, HeldOut]:
    """The calibration images and the held-out images the result is judged on, never the same ones.

    With ``eval_dir``, the held-out images are drawn from it and calibration uses ``samples`` of the
    whole source. Without, a seeded :data:`~.common.HELDOUT_FRACTION` of the source (an array's rows
    or a folder's files) is held out and ``samples`` are drawn from the rest.

    Raises:
        PrecisionError: a bad source, ``eval_dir`` is the calibration folder, or too few images to split.
    """
    from acmix_deploy.preprocess import preprocess

    if eval_dir is not None:
        if not isinstance(source, np.ndarray) and Path(source).resolve() == Path(eval_dir).resolve():
            raise PrecisionError(
                f"the evaluation folder {eval_dir} is the calibration folder: the int8 check needs images "
                "calibration never saw (calibrate on the training split)"
            )
        return calibration_images(source, manifest, samples, seed), folder_heldout(eval_dir, manifest)
    if isinstance(source, np.ndarray):
        images = calibration_images(source, manifest, len(source))
        kept, held = split_holdout(len(images), seed)
        return images[np.sort(kept[:samples])], HeldOut(images[held], "calibration split", "array", len(images))
    files = folder_files(source, "calibration")
    kept, held = split_holdout(len(files), seed)
    calib = preprocess([files[i] for i in np.sort(kept[:samples])], manifest.preprocessing)
    heldout = preprocess([files[i] for i in held], manifest.preprocessing)
    return calib, HeldOut(heldout, "calibration split", str(source), len(files))


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


def _quantize_best(
    quantizer: StaticQuantizer, options: Int8Options, manifest: Manifest
) -> tuple[QuantizationRun, dict]:
    """The baseline quantization (``keep_fp32`` blocks in float), improved by the sensitivity pass when asked for."""
    names = {n.name for n in quantizer.pre_model.graph.node}
    unknown = sorted(set(options.exclude_nodes) - names)
    if unknown:
        raise PrecisionError(f"exclude_nodes not in the graph: {', '.join(unknown[:5])}")
    kept = keep_fp32_nodes(quantizer.pre_model, manifest, options.keep_fp32)
    baseline = quantizer.quantize(tuple(dict.fromkeys([*options.exclude_nodes, *kept])))
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
    images, heldout = split_calibration(calibration, source.manifest, options.samples, eval_dir)
    with tempfile.TemporaryDirectory(prefix="acmix-int8.") as tmp:
        quantizer = StaticQuantizer(source, images, options, Path(tmp))
        best, search = _quantize_best(quantizer, options, source.manifest)

    run = cpu_runner(best.model)
    random_report, _ = random_parity(source.run, run, source.manifest.img_size, _ANY)
    parity, check = heldout_parity(source.run, run, heldout, options.tolerance)
    if not check.passed:
        t = options.tolerance
        raise ParityError(
            f"int8 model out of tolerance vs fp32 on {heldout.describe()}: max|diff| {check.max_abs_diff:.3g} "
            f"(allowed {t.rtol:g} x {max(1.0, check.max_abs_ref):.2f}), worst cosine {check.cosine_min:.4f} "
            f"(>= {t.min_cosine:g}), top-1 agreement {check.top1_agreement:.1%} (>= {t.min_top1_agreement:.0%}); "
            "nothing written. Try method='entropy' or 'percentile', more samples, or exclude_nodes",
            check,
        )
    calib_check = compare_outputs(
        [quantizer.ref_logits], [run_batched(run, images)], [len(images)], _ANY,
        inputs=f"the {len(images)} calibration images",
    )  # fmt: skip
    record = {
        "method": options.method,
        "samples": len(images),
        "held_out": heldout.record(),
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
        **({"keep_fp32": {"names": list(options.keep_fp32)}} if options.keep_fp32 else {}),
        "sensitivity": search,
        "quantizations": [r.record() for r in quantizer.runs],
        "calibration_images_parity": calib_check.to_dict() | {"note": "the images it was calibrated on: not a proof"},
        "random_inputs_parity": random_report
        | {"note": "standard-normal inputs lie far outside the calibrated ranges: clipped, not representative"},
        "quantized_ops": op_histogram(best.model),
        "qdq_nodes": sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in best.model.graph.node),
    }
    accuracy = folder_accuracy(source.run, run, eval_dir, source.manifest, eval_limit) if eval_dir is not None else None
    variant = ProvenVariant(
        best.model, "int8", parity, run, accuracy, details, int8_target=options.target, calibration=record,
        heldout=parity,
        kept_fp32=list(options.keep_fp32) or None,
    )  # fmt: skip
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
    keep_fp32: Sequence[str] = (),
    sensitivity: bool = True,
    sensitivity_budget: int = 5,
    cpu_format: str = "qoperator",
    tolerance: Tolerance = INT8_TOLERANCE,
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
        target, method, samples, per_channel, exclude_nodes, keep_fp32, sensitivity, sensitivity_budget,
            cpu_format, tolerance: the conversion's knobs, as in :class:`Int8Options`. The
            sensitivity pass tries keeping in float each group of usually sensitive nodes (first
            conv, classifier, attention MatMuls; ``sensitivity_budget`` groups at most, plus one run
            of the union when several help); a group stays float when it keeps the top-1 agreement
            with fp32 on the calibration images and cuts the logits' normalised squared error by >= 25%.
        eval_dir, eval_limit: an image folder to report accuracy and agreement on; its images (up
            to 256, seeded) are also the held-out images the result is judged on. Without it, a
            seeded 20% of ``calibration`` (at most 256 images) is held out of calibration for that.
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
        keep_fp32=tuple(keep_fp32),
        sensitivity=sensitivity,
        sensitivity_budget=sensitivity_budget,
        cpu_format=cpu_format,
        tolerance=tolerance,
    )
    return quantize_int8(
        src_onnx, dst_onnx, calibration, options, eval_dir=eval_dir, eval_limit=eval_limit, force=force
    )
