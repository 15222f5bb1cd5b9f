"""Which TensorRT flags give a precision: decided from what this TensorRT offers and what the ONNX holds.

Pure (flag names in, flag names out), so every TensorRT 10/11 combination is tested on the CPU;
:mod:`.network` and :mod:`.config` turn the names into TensorRT enum values. TensorRT 10 may
lower an fp32 ONNX with the FP16 flag (weak typing, the one weakly typed plan); an ONNX that
already holds its precision (fp16/mixed, Q/DQ int8) is built strongly typed, with the
``STRONGLY_TYPED`` network flag every 10.x has (10.0 included), and TensorRT 11 is always
strongly typed (no FP16/INT8 builder flags; ``STRONGLY_TYPED`` is kept there, deprecated and
ignored, so it is not set). Flags are feature-detected by name, never assumed from a version
number alone, and set by name, never by value (11.x renumbered them).
"""

from __future__ import annotations

from dataclasses import dataclass

from acmix_deploy.runtimes.tensorrt import trt_major

from .base import PRECISIONS, BuildError

FP16_ONNX_PRECISIONS = ("fp16", "mixed")


@dataclass(frozen=True)
class PrecisionPlan:
    """How to ask TensorRT for a precision: network-creation flags and builder flags, by name."""

    network_flags: tuple[str, ...] = ()
    builder_flags: tuple[str, ...] = ()
    clear_flags: tuple[str, ...] = ()
    strongly_typed: bool = False
    note: str = ""


def precision_plan(
    precision: str,
    *,
    trt_version: str,
    onnx_precision: str,
    builder_flags: set[str],
    network_flags: set[str],
) -> PrecisionPlan:
    """Decide the flags for ``precision`` given what this TensorRT offers and what the ONNX holds.

    Args:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        trt_version: ``tensorrt.__version__``.
        onnx_precision: the manifest's ``precision`` (``fp32``, ``fp16``/``mixed``, ``int8``).
        builder_flags: names present in ``trt.BuilderFlag`` (feature detection; TensorRT 11 lacks
            ``FP16``/``INT8``).
        network_flags: names present in ``trt.NetworkDefinitionCreationFlag``.

    Raises:
        BuildError: the combination cannot give the requested precision.
    """
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    major = trt_major(trt_version)
    strong = ("STRONGLY_TYPED",) if "STRONGLY_TYPED" in network_flags else ()
    if precision == "fp32":
        return _fp32_plan(major, onnx_precision, builder_flags)
    if precision == "fp16":
        return _fp16_plan(major, trt_version, onnx_precision, builder_flags, strong)
    return _int8_plan(major, trt_version, onnx_precision, builder_flags, strong)


def _no_tf32(builder_flags: set[str]) -> tuple[str, ...]:
    # TF32 rounds fp32 matmuls/convs to a 10-bit mantissa; an fp32 engine should match ORT fp32.
    return ("TF32",) if "TF32" in builder_flags else ()


def _fp32_plan(major: int, onnx_precision: str, builder_flags: set[str]) -> PrecisionPlan:
    if onnx_precision in (*FP16_ONNX_PRECISIONS, "int8"):
        raise BuildError(
            f"this ONNX carries {onnx_precision} types; an fp32 engine needs an fp32 ONNX (or build with "
            f"--{'int8' if onnx_precision == 'int8' else 'fp16'})"
        )
    return PrecisionPlan(clear_flags=_no_tf32(builder_flags), strongly_typed=major >= 11, note="fp32")


def _fp16_plan(
    major: int, trt_version: str, onnx_precision: str, builder_flags: set[str], strong: tuple[str, ...]
) -> PrecisionPlan:
    if onnx_precision in FP16_ONNX_PRECISIONS:
        # Precision is already in the graph: keep it exactly (strong typing), never re-decide it.
        if major >= 11:
            return PrecisionPlan(strongly_typed=True, note="fp16 from the mixed-precision ONNX")
        return PrecisionPlan(
            network_flags=_strong(trt_version, strong), strongly_typed=True, note="fp16 ONNX, strongly typed"
        )
    if onnx_precision == "int8":
        raise BuildError("this ONNX is INT8 (Q/DQ); build it with --int8")
    if major >= 11 or "FP16" not in builder_flags:
        raise BuildError(
            f"TensorRT {trt_version} has no FP16 builder flag (networks are always strongly typed): "
            "FP16 must come from the ONNX. Export a mixed-precision ONNX (manifest precision 'fp16', "
            "LayerNorm/Softmax/reductions and I/O kept in fp32) and build that"
        )
    return PrecisionPlan(builder_flags=("FP16",), clear_flags=_no_tf32(builder_flags), note="fp16 flag on an fp32 ONNX")


def _int8_plan(
    major: int, trt_version: str, onnx_precision: str, builder_flags: set[str], strong: tuple[str, ...]
) -> PrecisionPlan:
    # Explicit quantisation only, never a calibrator (deprecated in 10.1, removed in 11).
    if onnx_precision != "int8":
        raise BuildError(
            "INT8 needs a Q/DQ-quantised ONNX (manifest precision 'int8'); calibration is not supported. "
            f"This ONNX is {onnx_precision}"
        )
    # Strongly typed: the layers the sensitivity pass kept in float then stay exactly as measured
    # (weak typing with INT8 + FP16 flags would let TensorRT re-decide them), and a 10.x engine
    # matches what TensorRT 11 builds.
    if major >= 11:
        return PrecisionPlan(strongly_typed=True, note="int8 from Q/DQ nodes")
    return PrecisionPlan(
        network_flags=_strong(trt_version, strong), strongly_typed=True, note="int8 Q/DQ, strongly typed"
    )


def _strong(trt_version: str, strong: tuple[str, ...]) -> tuple[str, ...]:
    """The STRONGLY_TYPED network flag, which every TensorRT 10 release has (checked against 10.0's bindings).

    Raises:
        BuildError: this TensorRT lacks it (older than 10.0, which we do not support).
    """
    if not strong:
        raise BuildError(f"TensorRT {trt_version} has no STRONGLY_TYPED network flag; TensorRT 10.0 or later is needed")
    return strong


__all__ = ["FP16_ONNX_PRECISIONS", "PrecisionPlan", "precision_plan"]
