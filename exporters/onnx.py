"""Export an ACmix model to a validated ONNX file: rewrite, export, optimise, check, prove parity.

Pipeline (each stage reported through ``progress``):
1. resolve the source (checkpoint path or module) and keep the *original* model as the reference;
2. ``acmix_deploy.rewrite.to_deploy`` (unless ``rewrite=False``);
3. ``torch.onnx.export`` (the TorchScript-based exporter: fast, and our deploy forms trace to clean,
   batch-agnostic graphs), dynamic batch unless a fixed batch is asked for;
4. graph passes (:mod:`exporters.graph`): constant folding, cleanup, toposort, full check,
   shape inference;
5. the manifest into ``metadata_props`` and a JSON sidecar;
6. parity in ONNX Runtime against the original model on several batch sizes (the original runs once,
   at the largest; :func:`~exporters.validate.check_parity`); outside tolerance the export fails
   with :class:`~exporters.validate.ParityError` and nothing is placed.
Files appear atomically: a failed or interrupted export leaves no partial artifact.
"""

from __future__ import annotations

import copy
import datetime as _dt
import io
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

import acmix_deploy
from acmix_deploy.checkpoint import resolve_model
from acmix_deploy.errors import AcmixDeployError, InputSizeError
from acmix_deploy.fileio import atomic_write_text, check_writable
from acmix_deploy.manifest import BatchSpec, Manifest, sidecar_path
from acmix_deploy.models import match_variant
from acmix_deploy.rewrite import to_deploy
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved

from .graph import check_and_infer, float64_tensors, op_histogram, optimize_graph, save_with_manifest
from .validate import ParityError, ParityReport, Tolerance, check_parity, random_inputs

DEFAULT_OPSET = 20  # Gelu (opset 20) and LayerNormalization (17) export as single ops
MIN_OPSET = 17
DEFAULT_MAX_BATCH = 32
# The export summary's latency line: interleaved rounds of the torch reference and ORT at batch 1. Three
# give a median that one slow call cannot move; each costs a reference call (~1 s for ACmix-ResNet-50 at
# 224 px here), and a careful comparison is `benchmark`'s job (windows, stability, percentiles).
LATENCY_ROUNDS = 3
Progress = Callable[[str, str], None]


class ExportError(AcmixDeployError):
    """The model could not be exported or the exported graph is invalid."""


@dataclass
class ExportReport:
    path: Path
    manifest: Manifest
    nodes: int
    ops: dict[str, int]
    size_bytes: int
    parity: ParityReport | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "nodes": self.nodes,
            "ops": self.ops,
            "size_bytes": self.size_bytes,
            "parity": self.parity.to_dict() if self.parity else None,
            "stage_seconds": self.stage_seconds,
            "latency_ms": self.latency_ms,
        }


def _noop(stage: str, message: str) -> None:
    pass


def _tool_versions() -> dict:
    import onnxruntime

    return {
        "acmix_deploy": acmix_deploy.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def torch_to_onnx(model: nn.Module, img_size: int, *, batch: int | None, opset: int) -> onnx.ModelProto:
    """Trace ``model`` to ONNX in memory (weights embedded)."""
    example = torch.from_numpy(random_inputs(batch or 2, img_size, seed=123))
    buffer = io.BytesIO()
    dynamic = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Strided Slices (the halo gathers) are not folded by torch; our graph passes fold them.
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - exporter failures come in many types; report them as one
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(
    source: nn.Module | str | Path,
    path: str | Path,
    *,
    batch: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    opset: int = DEFAULT_OPSET,
    rewrite: bool = True,
    img_size: int | None = None,
    force: bool = False,
    validate: bool = True,
    validate_batches: Sequence[int] | None = None,
    tolerance: Tolerance = Tolerance(),
    measure_latency: bool = False,
    trust_pickle: bool = False,
    labels: Sequence[str] | None = None,
    progress: Progress = _noop,
) -> ExportReport:
    """Export a checkpoint or module to ``path`` (``.onnx``) with a manifest sidecar.

    Args:
        source: a checkpoint path or an ACmix model (reference form).
        path: destination ONNX file; its manifest goes to ``<path>.json``.
        batch: export with this fixed batch size; ``None`` (default) keeps the batch dynamic.
        max_batch: largest batch the artifact promises (dynamic exports; recorded in the manifest).
        opset: ONNX opset (>= 17).
        rewrite: export the deploy rewrite (default) or the reference model as is.
        img_size: input resolution (ACmix-ResNet; Swin is fixed to its training size).
        force: replace existing files.
        validate: check parity in ONNX Runtime against the original model (raise on failure).
        validate_batches: batch sizes to validate (default: 1, 2, 7 for dynamic, else the fixed batch).
        tolerance: the parity bounds.
        labels: class names in output order, recorded in the manifest so every runtime (and
            ``evaluate``, matching folders by name) shows them; one per class.
        measure_latency: also time ORT against the torch reference at batch 1 (for the summary):
            :data:`LATENCY_ROUNDS` interleaved rounds, without a warm-up round when validation
            has just run both.
        trust_pickle: allow arbitrary unpickling of the checkpoint.
        progress: ``callback(stage, message)`` for progress output.

    Raises:
        ExportError (including a size the model cannot run at), ParityError, CheckpointError, OutputExistsError.
    """
    path = Path(path)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET} (LayerNormalization needs 17)")
    if batch is not None and batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    if max_batch < 1:
        raise ExportError(f"max_batch must be >= 1, got {max_batch}")
    check_writable(path, force=force)
    check_writable(sidecar_path(path), force=force)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    if isinstance(labels, str):
        raise ExportError("labels must be a list of class names, not one string (read a file with read_labels)")
    try:
        resolved = resolve_model(source, img_size, trust_pickle=trust_pickle)
    except InputSizeError as exc:
        raise ExportError(str(exc)) from None
    reference, source_info, size, family = resolved.model, resolved.source, resolved.img_size, resolved.family.name
    recorded_labels = resolved.checkpoint.labels if resolved.checkpoint is not None else None
    progress("load", f"{family} at {size} px ({source_info.get('file', source_info['type'])})")
    seconds["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    exportable = to_deploy(reference, img_size=size) if rewrite else copy.deepcopy(reference)
    seconds["rewrite"] = time.perf_counter() - t0
    progress("rewrite", "deploy form built" if rewrite else "skipped (--no-rewrite)")

    t0 = time.perf_counter()
    proto = torch_to_onnx(exportable, size, batch=batch, opset=opset)
    seconds["export"] = time.perf_counter() - t0
    progress("export", f"torch.onnx.export: {len(proto.graph.node)} nodes, opset {opset}")

    t0 = time.perf_counter()
    try:
        proto = optimize_graph(proto, batch_dim=batch or "batch")
        proto = check_and_infer(proto)
    except Exception as exc:  # noqa: BLE001 - checker/graphsurgeon raise assorted types
        raise ExportError(f"graph passes failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    doubles = float64_tensors(proto)
    if doubles and rewrite:
        raise ExportError(f"float64 tensors in the exported graph: {', '.join(doubles[:5])}")
    seconds["passes"] = time.perf_counter() - t0
    progress("passes", f"folded and checked: {len(proto.graph.node)} nodes")

    hparams = reference.hparams()
    manifest = Manifest(
        family=family,
        hparams=hparams,
        img_size=size,
        num_classes=int(hparams["num_classes"]),
        preprocessing=resolved.family.preprocessing(size),
        variant=match_variant(family, hparams),
        batch=BatchSpec.fixed(batch) if batch else BatchSpec(max=max_batch),
        opset=opset,
        rewrite=rewrite,
        tools=_tool_versions(),
        source=source_info,
        labels=list(labels) if labels is not None else recorded_labels,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if labels is not None and len(manifest.labels) != manifest.num_classes:
        raise ExportError(f"{len(manifest.labels)} labels given for a model with {manifest.num_classes} classes")

    report_parity = None
    session = None
    if validate:
        t0 = time.perf_counter()
        session = ort_session(proto)
        batches = list(validate_batches or ([batch] if batch else [1, 2, 7]))
        if batch and any(b != batch for b in batches):
            raise ExportError(f"a fixed-batch ({batch}) export can only be validated at batch {batch}")

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {"input": x})[0]

        report_parity = check_parity(reference, run, img_size=size, batches=batches, tolerance=tolerance)
        seconds["validate"] = time.perf_counter() - t0
        manifest = manifest.replace(parity={"onnxruntime_vs_torch_reference": report_parity.to_dict()})
        progress("validate", ("PASS " if report_parity.passed else "FAIL ") + report_parity.describe())
        if not report_parity.passed:
            failed = path.with_name(path.name + ".parity-failed.json")
            atomic_write_text(failed, json.dumps(report_parity.to_dict(), indent=2), force=True)
            raise ParityError(
                f"parity check failed: {report_parity.describe()}; nothing written (report: {failed})",
                report_parity,
            )

    latency: dict[str, float] = {}
    if measure_latency:
        t0 = time.perf_counter()
        latency = _latency_side_by_side(
            reference, session or ort_session(proto), size, batch or 1, warmup=0 if session is not None else 1
        )
        seconds["latency"] = time.perf_counter() - t0
        progress(
            "latency",
            f"ORT {latency['onnxruntime']:.1f} ms, torch reference {latency['torch_reference']:.1f} ms "
            f"at batch {batch or 1} (median of {LATENCY_ROUNDS})",
        )

    for key, value in (("family", family), ("img_size", str(size)), ("num_classes", str(manifest.num_classes))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"acmix_deploy.{key}", value

    t0 = time.perf_counter()
    save_with_manifest(proto, manifest.to_json(), path, force=force)
    seconds["write"] = time.perf_counter() - t0
    report = ExportReport(
        path=path,
        manifest=manifest,
        nodes=len(proto.graph.node),
        ops=op_histogram(proto),
        size_bytes=path.stat().st_size,
        parity=report_parity,
        stage_seconds=seconds,
        latency_ms=latency,
    )
    progress("write", f"{path} ({report.size_bytes / 1e6:.1f} MB) + {sidecar_path(path).name}")
    return report


def _latency_side_by_side(
    reference: nn.Module, session, size: int, batch: int, *, rounds: int = LATENCY_ROUNDS, warmup: int = 1
) -> dict[str, float]:
    """Median ms of the torch reference and the ONNX model, interleaved so drift hits both alike.

    ``warmup=0`` where validation has already run both (the session at this batch, the reference
    on a larger one): a further untimed round only repeated the slowest call of the export.
    """
    x = random_inputs(batch, size, seed=7)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        stats = time_interleaved(
            {"torch_reference": lambda: reference(xt), "onnxruntime": lambda: session.run(None, {"input": x})},
            rounds=rounds,
            warmup=warmup,
        )
    return {name: st.p50 for name, st in stats.items()}


__all__ = ["DEFAULT_OPSET", "LATENCY_ROUNDS", "ExportError", "ExportReport", "ParityError", "Tolerance", "export_onnx"]
