"""Precision plans against the flag enums of real TensorRT releases, not hand-picked subsets.

The names and values below were read from the compiled Python bindings of TensorRT 10.16.1.11 and
11.4.0.106 (``trt.BuilderFlag.__members__``, ``trt.NetworkDefinitionCreationFlag.__members__``).
Note that 11.x renumbered STRONGLY_TYPED to bit 0: a plan must never carry a flag by value.
"""

from __future__ import annotations

import pytest

from acmix_deploy.exporters.tensorrt import BuildError, precision_plan
from acmix_deploy.exporters.tensorrt.network import network_creation_flags

BUILDER_FLAGS = {
    "10.16.1.11": {
        "FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
        "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10,
        "DIRECT_IO": 11, "REJECT_EMPTY_ALGORITHMS": 12, "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14,
        "FP8": 15, "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18, "WEIGHTLESS": 19,
        "STRIP_PLAN": 19, "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21, "INT4": 22, "REFIT_INDIVIDUAL": 23,
        "STRICT_NANS": 24, "MONITOR_MEMORY": 25, "FP4": 26, "EDITABLE_TIMING_CACHE": 27,
        "DISTRIBUTIVE_INDEPENDENCE": 28,
    },
    "11.4.0.106": {
        "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
        "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13,
        "ERROR_ON_TIMING_CACHE_MISS": 15, "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
        "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
        "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27,
    },
}  # fmt: skip
NETWORK_FLAGS = {
    "10.16.1.11": {
        "EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2, "PREFER_AOT_PYTHON_PLUGINS": 3
    },
    "11.4.0.106": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
}  # fmt: skip

# (release, precision, ONNX precision) -> (create_network mask, builder flags set, cleared, strongly typed)
EXPECTED = {
    ("10.16.1.11", "fp32", "fp32"): (0, (), ("TF32",), False),
    ("10.16.1.11", "fp16", "fp32"): (0, ("FP16",), ("TF32",), False),
    ("10.16.1.11", "fp16", "fp16"): (1 << 1, (), (), True),
    ("10.16.1.11", "int8", "int8"): (1 << 1, (), (), True),
    ("11.4.0.106", "fp32", "fp32"): (0, (), ("TF32",), True),
    ("11.4.0.106", "fp16", "fp16"): (0, (), (), True),
    ("11.4.0.106", "fp16", "mixed"): (0, (), (), True),
    ("11.4.0.106", "int8", "int8"): (0, (), (), True),
}


def _plan(release: str, precision: str, onnx_precision: str):
    return precision_plan(
        precision,
        trt_version=release,
        onnx_precision=onnx_precision,
        builder_flags=set(BUILDER_FLAGS[release]),
        network_flags=set(NETWORK_FLAGS[release]),
    )


@pytest.mark.parametrize("case", list(EXPECTED), ids=lambda c: "-".join(c))
def test_plans_on_real_flag_enums(case):
    release, precision, onnx_precision = case
    plan = _plan(release, precision, onnx_precision)
    mask = network_creation_flags(plan, NETWORK_FLAGS[release])
    assert (mask, plan.builder_flags, plan.clear_flags, plan.strongly_typed) == EXPECTED[case]
    for name in (*plan.builder_flags, *plan.clear_flags):
        assert name in BUILDER_FLAGS[release]  # every name the config stage looks up exists there


def test_trt11_refuses_fp16_from_an_fp32_onnx_and_int8_needs_qdq():
    with pytest.raises(BuildError, match="FP16 must come from the ONNX"):
        _plan("11.4.0.106", "fp16", "fp32")
    for release in BUILDER_FLAGS:
        with pytest.raises(BuildError, match="Q/DQ-quantised ONNX"):
            _plan(release, "int8", "fp16")
