"""TensorRT engines from validated acmix-deploy ONNX models (TensorRT 10 and 11), built in stages.

One module per stage, each usable and tested on its own (TensorRT itself is imported only inside
:func:`build_engine`, so all of this imports and the CPU-side stages run without it):

- :mod:`.network`: read the ONNX's manifest and image input, refuse graphs the readiness check
  blocks, parse the file into a TensorRT network;
- :mod:`.profile`: the batch optimisation profile, within the manifest's promise;
- :mod:`.precision_flags`: which network/builder flags give fp32/fp16/int8 on this TensorRT;
- :mod:`.config`: the builder config (workspace, flags, optimisation level, profile, timing cache);
- :mod:`.plan`: the builder, its logger and progress monitor, the serialized plan;
- :mod:`.sidecar`: the plan, its ``<engine>.json`` metadata and layer info, written atomically;
- :mod:`.engine`: :func:`build_engine`, the stages in order.

The CPU readiness check that runs first: :mod:`.readiness` (graph-level checks) and
:mod:`.node_checks` (per-node rules), against NVIDIA's support data in ``support_table.json``
(:mod:`.support_table`), reported as :class:`Finding` objects (:mod:`.findings`).
"""

from .base import PRECISIONS, BuildError
from .config import BuilderSettings
from .engine import BuildReport, build_engine
from .findings import Finding, format_findings, has_blockers
from .network import format_parser_errors, read_onnx_manifest
from .precision_flags import PrecisionPlan, precision_plan
from .profile import ProfileShapes, compute_profile
from .readiness import check_tensorrt_readiness
from .sidecar import layers_path, make_engine_sidecar
from .support_table import SUPPORT_TABLE

__all__ = [
    "PRECISIONS",
    "SUPPORT_TABLE",
    "BuildError",
    "BuildReport",
    "BuilderSettings",
    "Finding",
    "PrecisionPlan",
    "ProfileShapes",
    "build_engine",
    "check_tensorrt_readiness",
    "compute_profile",
    "format_findings",
    "format_parser_errors",
    "has_blockers",
    "layers_path",
    "make_engine_sidecar",
    "precision_plan",
    "read_onnx_manifest",
]
