"""The network stage: read the ONNX (manifest, image input, readiness), then parse it into a TensorRT network.

:func:`read_onnx_manifest` and :func:`refuse_unready_graph` run before TensorRT is touched, so a
wrong file or an unsupported graph fails in seconds on any machine. :func:`parse_network` hands
the file path to ``OnnxParser.parse_from_file`` (so weights in external files load) and reports
every parser error with its node (:func:`format_parser_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from acmix_deploy.manifest import Manifest, ManifestError, read_manifest

from .base import BuildError, Progress, no_progress
from .findings import has_blockers
from .precision_flags import PrecisionPlan
from .readiness import check_tensorrt_readiness
from .support_table import SUPPORT_TABLE


def read_onnx_manifest(onnx_path: str | Path) -> tuple[Manifest, str, list[int | str | None], onnx.ModelProto]:
    """The manifest (metadata, else sidecar), input name and input shape of an ONNX file.

    The manifest comes from :func:`acmix_deploy.manifest.read_manifest`, the package's one
    metadata reader; the graph is loaded for the readiness check and the input shape, without
    weights in external files (only the graph is needed here).

    Raises:
        BuildError: unreadable ONNX, no or a malformed manifest, or not a single-input model.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BuildError(f"{onnx_path}: no such file")
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted types for bad files
        raise BuildError(f"{onnx_path}: not a readable ONNX file ({exc})") from None
    try:
        manifest = read_manifest(onnx_path)
    except ManifestError as exc:
        hint = "" if "acmix-deploy export" in str(exc) else "; export it with `acmix-deploy export`"
        raise BuildError(f"{exc}{hint}") from None
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise BuildError(f"{onnx_path}: expected one image input, found {len(inputs)}")
    dims: list[int | str | None] = []
    for d in inputs[0].type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None))
    return manifest, inputs[0].name, dims, proto


def refuse_unready_graph(proto: onnx.ModelProto, name: str, major: int, progress: Progress = no_progress) -> list[str]:
    """Run the readiness check for TensorRT ``major``; refuse blockers, report and return the warnings.

    A major the support table does not cover is not checked (the parser will judge it).

    Raises:
        BuildError: the graph has blockers, listed one per line.
    """
    if major not in SUPPORT_TABLE["majors"]:
        return []
    findings = check_tensorrt_readiness(proto, trt_major=major)
    if has_blockers(findings):
        lines = "\n".join(f"  {f}" for f in findings if f.severity == "blocker")
        raise BuildError(f"{name} is not ready for TensorRT {major}:\n{lines}")
    warnings = [str(f) for f in findings if f.severity == "warning"]
    for warning in warnings:
        progress("check", warning)
    return warnings


def network_creation_flags(plan: PrecisionPlan, flag_values: Mapping[str, Any]) -> int:
    """The ``create_network`` bit mask for ``plan.network_flags``.

    Args:
        plan: the precision plan (flag names).
        flag_values: ``trt.NetworkDefinitionCreationFlag.__members__`` (name -> enum value).
    """
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(flag_values[name])
    return flags


@dataclass
class ParsedNetwork:
    """A parsed ``INetworkDefinition`` and the ``OnnxParser`` that filled it.

    The parser owns the weights the network points at, so it must live until the build is done:
    keeping both in one object makes that impossible to get wrong.
    """

    network: Any
    parser: Any


def parse_network(
    trt: Any,
    builder: Any,
    logger: Any,
    onnx_path: Path,
    plan: PrecisionPlan,
    input_name: str,
    progress: Progress = no_progress,
) -> ParsedNetwork:
    """Create a network with ``plan``'s creation flags and parse ``onnx_path`` into it.

    Raises:
        BuildError: the parser rejects the file (every error with its node), or the parsed
            network's input is not the ONNX's single image input.
    """
    network = builder.create_network(network_creation_flags(plan, trt.NetworkDefinitionCreationFlag.__members__))
    if network is None:
        raise BuildError(f"TensorRT could not create a network with the flags {list(plan.network_flags)}")
    try:
        parser = trt.OnnxParser(network, logger)
    except (TypeError, RuntimeError) as exc:  # a NULL native parser surfaces as pybind11's nullptr TypeError
        raise BuildError(f"TensorRT could not create its ONNX parser (libnvonnxparser): {exc}") from None
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise BuildError(f"TensorRT's ONNX parser rejected {onnx_path.name}:\n{format_parser_errors(errors)}")
    progress("parse", f"{network.num_layers} layers, {network.num_inputs} input(s)")
    if network.num_inputs != 1 or network.get_input(0).name != input_name:
        raise BuildError(f"the parsed network's inputs do not match the ONNX input {input_name!r}")
    return ParsedNetwork(network, parser)


def format_parser_errors(errors: Sequence) -> str:
    """One line per ``ParserError``: index, node name, operator, code and description.

    ``node_name``/``node_operator`` exist from TensorRT 9.1's parser on; older objects only have
    ``node()`` (an index), so each accessor is feature-detected.
    """
    lines = []
    for i, err in enumerate(errors):
        node = err.node() if hasattr(err, "node") else -1
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        code = err.code() if hasattr(err, "code") else ""
        desc = err.desc() if hasattr(err, "desc") else str(err)
        where = f"node {node}" + (f" {name!r}" if name else "") + (f" ({op})" if op else "")
        lines.append(f"  [{i}] {where}: {code}: {desc}")
    return "\n".join(lines)


__all__ = [
    "ParsedNetwork",
    "format_parser_errors",
    "network_creation_flags",
    "parse_network",
    "read_onnx_manifest",
    "refuse_unready_graph",
]
