"""Precision variants of an exported fp32 ACmix ONNX: float16 (mixed) and INT8 (static Q/DQ or dynamic).

Each conversion reads an fp32 artifact written by :func:`acmix_deploy.exporters.onnx.export_onnx`,
refuses clobbering before any work, proves the variant against the fp32 model in ONNX Runtime
(seeded random inputs, and real images it was not calibrated on: see :mod:`.common`), and writes a new ONNX plus
its ``<onnx>.json`` sidecar atomically, the variant's own manifest recording what was measured.

* :func:`to_fp16` (:mod:`.fp16`): float16 weights and compute, precision-critical ops kept float32.
* :func:`to_int8` (:mod:`.int8_static`): calibrated static quantization for ORT CPU or TensorRT,
  with a sensitivity pass (:mod:`.sensitivity`) that keeps the few hurtful nodes in float.
* :func:`to_int8_dynamic` (:mod:`.int8_dynamic`): ORT CPU dynamic quantization, no calibration.

What they share (source checks, proofs, manifest and writing) is :mod:`.common`.
"""

from .common import MEASURE_ONLY, PrecisionError, PrecisionReport
from .fp16 import DEFAULT_KEEP_FP32_OPS, FP16_TOLERANCE, convert_fp16, ort_cpu_fp16_coverage, to_fp16
from .int8_dynamic import DYNAMIC_IMAGE_TOLERANCE, DYNAMIC_TOLERANCE, to_int8_dynamic
from .int8_static import (
    CALIBRATION_METHODS,
    CPU_FORMATS,
    INT8_TARGETS,
    INT8_TOLERANCE,
    Int8Options,
    calibration_images,
    quantize_int8,
    split_calibration,
    to_int8,
)
from .sensitivity import SENSITIVITY_GAIN, QuantizationRun, search_sensitive_groups, sensitivity_candidates

__all__ = [
    "CALIBRATION_METHODS",
    "CPU_FORMATS",
    "DEFAULT_KEEP_FP32_OPS",
    "DYNAMIC_IMAGE_TOLERANCE",
    "DYNAMIC_TOLERANCE",
    "FP16_TOLERANCE",
    "INT8_TARGETS",
    "INT8_TOLERANCE",
    "MEASURE_ONLY",
    "SENSITIVITY_GAIN",
    "Int8Options",
    "PrecisionError",
    "PrecisionReport",
    "QuantizationRun",
    "calibration_images",
    "convert_fp16",
    "ort_cpu_fp16_coverage",
    "quantize_int8",
    "search_sensitive_groups",
    "sensitivity_candidates",
    "split_calibration",
    "to_fp16",
    "to_int8",
    "to_int8_dynamic",
]
