"""What an exported ONNX model holds, as data and as text: ``acmix-deploy inspect MODEL.onnx``.

The manifest comes from :func:`acmix_deploy.manifest.read_manifest` (embedded metadata, else the
sidecar) and is compared with the graph by :func:`acmix_deploy.manifest.check_graph`, the check the
ONNX Runtime runner and the Triton exporter make: a manifest that disagrees with its graph (input
size, batch, names, class count) is the artifact's ``problem``, which the CLI refuses. Each
artifact is shown with its own proof: the fp32 export's parity is against the torch reference; an
fp16/int8 variant's is against the fp32 ONNX it was made from (its manifest's
``precision_report``), since the fp32 figures it also carries say nothing about its own rounding.
Optionally the graph is checked against TensorRT's ONNX parser support (:mod:`.tensorrt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from acmix_deploy.manifest import Manifest, ManifestError, check_graph, graph_io, read_manifest

if TYPE_CHECKING:
    from .tensorrt import Finding

REFERENCE_PARITY = "onnxruntime_vs_torch_reference"  # the key export_onnx records its proof under


@dataclass
class OnnxInfo:
    """An ONNX model's manifest (or why it has none), whether it describes the graph, and its TensorRT readiness."""

    path: Path
    manifest: Manifest | None
    error: str = ""
    problem: str = ""  # the manifest contradicts the graph (one line); empty when they agree
    trt_major: int | None = None  # the TensorRT major checked against; None: not checked
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """True when the readiness check found something TensorRT cannot build."""
        return any(f.severity == "blocker" for f in self.findings)

    def to_dict(self) -> dict:
        manifest = self.manifest.to_dict() if self.manifest else {"error": self.error}
        if self.trt_major is None:
            return {"manifest": manifest, "problem": self.problem or None, "tensorrt": None}
        from .tensorrt.findings import group_findings

        groups = [g.to_dict() for g in group_findings(self.findings)]  # what the text shows, counted
        return {
            "manifest": manifest,
            "problem": self.problem or None,
            "tensorrt": [dict(f.__dict__) for f in self.findings],
            "tensorrt_groups": groups,
        }

    def text(self) -> str:
        lines = []
        m = self.manifest
        if m is None:
            lines.append(f"manifest    none ({self.error})")
        else:
            lines.append(
                f"model       {m.variant or m.family}, {m.img_size} px, {m.num_classes} classes, "
                f"{m.precision}, opset {m.opset}"
            )
            lines.append(f"batch       {'dynamic' if m.batch.dynamic else 'fixed'} {m.batch.min}..{m.batch.max}")
            proof = parity_line(m)
            if proof:
                lines.append(f"parity      {proof}")
        if self.trt_major is not None:
            from .tensorrt import format_findings

            lines.append(f"TensorRT {self.trt_major} readiness:")
            lines.append(format_findings(self.findings) or "  no findings")
        return "\n".join(lines)


def parity_line(manifest: Manifest) -> str:
    """The artifact's own proof in one line: vs the fp32 ONNX for a variant, vs torch for the fp32 export."""
    report = manifest.precision_report if isinstance(manifest.precision_report, dict) else {}
    variant = report.get("parity")
    if manifest.precision != "fp32" and isinstance(variant, dict) and "max_abs_diff" in variant:
        nan = float("nan")
        return (
            f"vs fp32 ONNX: max|diff| {variant['max_abs_diff']:.2e}, cosine {variant.get('cosine_min', nan):.5f}, "
            f"top-1 agreement {variant.get('top1_agreement', nan):.1%}, passed: {variant.get('passed')}"
        )
    if manifest.precision != "fp32":
        return "no parity record of this variant vs fp32"
    reference = manifest.parity.get(REFERENCE_PARITY)
    if isinstance(reference, dict) and "max_abs_diff" in reference:
        return f"vs torch reference: max|diff| {reference['max_abs_diff']:.2e}, passed: {reference.get('passed')}"
    return ""


def inspect_onnx(path: str | Path, *, trt_major: int | None = None) -> OnnxInfo:
    """Read ``path``'s manifest (a missing or bad one is reported, not raised), compare it with the graph
    (a disagreement is ``problem``) and, with ``trt_major``, check the graph against that TensorRT
    major's ONNX parser."""
    path = Path(path)
    try:
        info = OnnxInfo(path, read_manifest(path))
    except ManifestError as exc:
        info = OnnxInfo(path, None, error=str(exc))
    if info.manifest is not None:
        info.problem = graph_problem(path, info.manifest)
    if trt_major is not None:
        from .tensorrt import check_tensorrt_readiness

        info.trt_major = trt_major
        info.findings = check_tensorrt_readiness(path, trt_major=trt_major)
    return info


def graph_problem(path: Path, manifest: Manifest) -> str:
    """The one-line disagreement between ``manifest`` and the graph of ``path`` (empty when none).

    The graph's inputs and outputs are read straight from the file (``graph_io``): no onnx import,
    no weights loaded, so ``inspect`` stays a metadata read.
    """
    try:
        check_graph(path, manifest, *graph_io(path))
    except ManifestError as exc:
        return str(exc)
    return ""


__all__ = ["OnnxInfo", "graph_problem", "inspect_onnx", "parity_line"]
