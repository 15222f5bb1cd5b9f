"""Dynamically quantized INT8 variant of an fp32 ONNX: S8 MatMul/Gemm weights, activations per call.

No calibration: each activation's range is measured at run time, so seeded random inputs are a
fair parity check (unlike static int8, whose ranges random inputs overflow). On ONNX Runtime CPU
this is the fastest int8 form measured for Swin-ACmix (``scripts/bench_int8_fullsize.py``): its
cost is in the Linear layers, which this quantizes, while the convolutions stay float. It is an
ORT CPU format (``DynamicQuantizeLinear``, ``MatMulInteger``); TensorRT needs
``to_int8(target="tensorrt")``. Manifest precision ``"int8"``, ``int8_target`` ``"cpu-dynamic"``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from acmix_deploy.parity import Tolerance

from ..graph import op_histogram
from ..validate import ParityError
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

DYNAMIC_TOLERANCE = Tolerance(rtol=np.inf, min_cosine=0.99, min_top1_agreement=0.8)
# On real images (the digits test split): ACmix-ResNet-26 max|diff| 0.0023 of the logit scale, worst cosine
# 0.99999, top-1 agreement 100%; Swin-ACmix 0.0265, 0.99952, 100%. About 4x margin on the worst.
DYNAMIC_IMAGE_TOLERANCE = Tolerance(rtol=0.1, min_cosine=0.99, min_top1_agreement=0.95)
DYNAMIC_TARGET = "cpu-dynamic"
DYNAMIC_OPS = ("MatMul", "Gemm")


def _quantize_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="acmix-int8dyn.") as tmp:
        src, out = Path(tmp) / "src.onnx", Path(tmp) / "dyn.onnx"
        src.write_bytes(model.SerializeToString())
        try:
            quantize_dynamic(str(src), str(out), op_types_to_quantize=list(DYNAMIC_OPS), weight_type=QuantType.QInt8)
        except Exception as exc:  # noqa: BLE001 - the quantizer raises assorted types
            raise PrecisionError(f"quantize_dynamic failed: {type(exc).__name__}: {exc}") from None
        return onnx.load(str(out))


def to_int8_dynamic(
    src_onnx: str | Path,
    dst_onnx: str | Path,
    *,
    tolerance: Tolerance = DYNAMIC_TOLERANCE,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
    force: bool = False,
    check_images: str | Path | None = None,
    image_tolerance: Tolerance = DYNAMIC_IMAGE_TOLERANCE,
) -> PrecisionReport:
    """Write an ONNX Runtime dynamically quantized INT8 copy of an fp32 acmix-deploy ONNX, proven against it.

    Args:
        src_onnx: the fp32 ONNX.
        dst_onnx: the new ONNX; its manifest also goes to ``<dst>.json``.
        tolerance: parity bounds vs the fp32 model on seeded random inputs (raise ParityError outside them).
        eval_dir, eval_limit: an image folder to report accuracy and agreement on.
        force: replace existing files.
        check_images, image_tolerance: an image folder (default ``eval_dir``) on which the variant
            must stay within ``image_tolerance`` of fp32 (up to 256 images, seeded; recorded as ``heldout``).

    Raises:
        PrecisionError, ParityError, OutputExistsError.
    """
    started = time.perf_counter()
    dst = check_outputs(dst_onnx, force)
    source = load_fp32_source(src_onnx)
    quantized = _quantize_dynamic(source.model)
    run = cpu_runner(quantized)
    parity, parity_report = random_parity(source.run, run, source.manifest.img_size, tolerance)
    if not parity_report.passed:
        raise ParityError(f"dynamic int8 model out of tolerance vs fp32: {parity_report.describe()}", parity_report)
    images_dir = check_images if check_images is not None else eval_dir
    heldout = None
    if images_dir is not None:
        heldout, report = heldout_parity(source.run, run, folder_heldout(images_dir, source.manifest), image_tolerance)
        if not report.passed:
            raise ParityError(
                f"dynamic int8 model out of tolerance vs fp32 on {report.inputs}: {report.describe()}; nothing written",
                report,
            )
    accuracy = folder_accuracy(source.run, run, eval_dir, source.manifest, eval_limit) if eval_dir is not None else None
    details = {
        "int8_target": DYNAMIC_TARGET,
        "format": "ONNX Runtime dynamic quantization: S8 weights of MatMul/Gemm, U8 activations per call",
        "quantized_ops": op_histogram(quantized),
    }
    variant = ProvenVariant(
        quantized, "int8", parity, run, accuracy, details, int8_target=DYNAMIC_TARGET, heldout=heldout
    )
    return write_variant(source, variant, dst, force=force, started=started)
