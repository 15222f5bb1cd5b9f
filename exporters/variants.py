"""The variant stage: fp16/int8 variants of an fp32 ONNX, for :func:`.pipeline.export` and :func:`convert`.

``export`` derives its variants from the fp32 ONNX it has just written; ``acmix-deploy convert``
(:func:`convert`) derives them from an fp32 ONNX exported earlier, so adding fp16 to an fp32
export needs neither re-exporting nor ``--force``. Both go through :func:`derive_variants`, one
stage, so a variant made either way is the same file with the same proofs (each conversion in
:mod:`.precision` checks it against the fp32 ONNX, on held-out images too, and writes nothing
outside tolerance). :func:`convert` names and checks every output before any work, like
:func:`.pipeline.plan_export`: ``model.onnx`` gets ``model.fp16.onnx`` / ``model.int8.onnx`` and
their sidecars next to it (or in ``output_dir``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmix_deploy.manifest import sidecar_path

from .pipeline import (
    ExportOptionsError,
    ExportPlan,
    Int8Settings,
    OnnxSettings,
    Progress,
    check_options,
    parse_precisions,
    variant_path,
)

if TYPE_CHECKING:
    from .precision import PrecisionReport

KEEP_FP32_DYNAMIC = "--keep-fp32 applies to fp16 and static int8 (--int8-target cpu or tensorrt)"


def derive_variant(
    precision: str,
    source: Path,
    path: Path,
    int8: Int8Settings,
    eval_data: str | Path | None,
    force: bool,
    keep_fp32: Sequence[str] = (),
) -> PrecisionReport:
    """Derive and prove one fp16/int8 variant of the fp32 ONNX ``source``.

    fp16 and dynamic int8 are calibrated on nothing, so any real images are held out for them:
    ``eval_data``, else the calibration folder, is what they are also checked on.
    """
    from .precision import to_fp16, to_int8, to_int8_dynamic

    images = eval_data if eval_data is not None else int8.calibration
    if precision == "fp16":
        return to_fp16(source, path, force=force, eval_dir=eval_data, keep_fp32=keep_fp32, check_images=images)
    if int8.target == "cpu-dynamic":
        return to_int8_dynamic(source, path, force=force, eval_dir=eval_data, check_images=images)
    return to_int8(
        source, path, calibration=int8.calibration, samples=int8.samples, method=int8.method, target=int8.target,
        force=force, eval_dir=eval_data, keep_fp32=keep_fp32,
    )  # fmt: skip


def derive_variants(
    source: Path,
    variants: dict[str, Path],
    int8: Int8Settings,
    eval_data: str | Path | None,
    force: bool,
    progress: Progress,
    *,
    keep_fp32: Sequence[str] = (),
    written: list[Path] | None = None,
) -> list[PrecisionReport]:
    """Each planned variant (precision -> its ONNX) of ``source``, in order; ``written`` gets each finished file."""
    reports = []
    for precision, path in variants.items():
        reports.append(derive_variant(precision, source, path, int8, eval_data, force, keep_fp32))
        if written is not None:
            written.append(path)
        progress(precision, f"{path}: {reports[-1].describe()}")
    return reports


@dataclass
class ConvertReport:
    """What :func:`convert` wrote: one precision report per variant, in the order asked for."""

    source: Path
    variants: list[PrecisionReport] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "variants": [v.to_dict() | {"result": v.describe()} for v in self.variants],
            "artifacts": [str(p) for v in self.variants for p in (v.path, sidecar_path(v.path))],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> list[tuple[str, str]]:
        """``(label, text)`` rows for a terminal: each variant written and what it measured."""
        rows = [("source", str(self.source))]
        rows += [(v.precision, f"{v.path} (+ {sidecar_path(v.path).name}): {v.describe()}") for v in self.variants]
        rows.append(("time", f"{self.seconds:.1f} s"))
        return rows


def plan_convert(
    fp32_onnx: str | Path,
    output_dir: str | Path | None = None,
    *,
    precision: str | Sequence[str] = ("fp16",),
    int8: Int8Settings = Int8Settings(),
) -> dict[str, Path]:
    """Check the options and name each variant :func:`convert` writes (nothing is read or written).

    Raises:
        ExportOptionsError: fp32 asked for, or int8 options that contradict each other.
    """
    precisions = parse_precisions(precision)
    if "fp32" in precisions:
        raise ExportOptionsError(
            "convert makes fp16/int8 variants of an fp32 ONNX: --precision fp16, int8 or fp16,int8"
        )
    check_options(precisions, "onnx", OnnxSettings(), int8)
    return {p: variant_path(fp32_onnx, p, output_dir) for p in precisions}


def convert(
    fp32_onnx: str | Path,
    output_dir: str | Path | None = None,
    *,
    precision: str | Sequence[str] = ("fp16",),
    int8: Int8Settings = Int8Settings(),
    eval_data: str | Path | None = None,
    force: bool = False,
    progress: Progress = lambda stage, message: None,
    keep_fp32: Sequence[str] = (),
) -> ConvertReport:
    """fp16/int8 variants of an fp32 acmix-deploy ONNX, next to it (or in ``output_dir``): the export's variant stage.

    Args:
        fp32_onnx: an fp32 ONNX written by ``export`` (dynamic batch); a variant is refused as a source.
        output_dir: where the variants go (default: the source's folder).
        precision: ``fp16``, ``int8`` or both (a list or ``"fp16,int8"``).
        int8: how the int8 variant is quantized (calibration folder, target, method, samples).
        eval_data: an image folder: accuracy recorded, and the held-out images each variant is checked on.
        force: replace existing variants.
        progress: ``callback(stage, message)`` after each variant.
        keep_fp32: stages/blocks/branches kept in fp32 (names as ``profile``/``sensitivity`` print them;
            names the graph does not have are refused in one line before that variant is written).

    Raises:
        ExportOptionsError: bad or contradicting options (before any work).
        PrecisionError: the source is missing, not an acmix-deploy fp32 ONNX, or fixed-batch (before any work).
        OutputExistsError: a variant or its sidecar exists and ``force`` is not set (before any work).
        ParityError: a variant is out of tolerance vs fp32 (it is not written).
    """
    from acmix_deploy.fileio import check_writable

    from .precision.common import load_fp32_source

    started = time.perf_counter()
    variants = plan_convert(fp32_onnx, output_dir, precision=precision, int8=int8)
    if keep_fp32 and "int8" in variants and int8.target == "cpu-dynamic":
        raise ExportOptionsError(KEEP_FP32_DYNAMIC)
    source = load_fp32_source(fp32_onnx).path  # refuses a variant, a fixed batch, a foreign ONNX, before any work
    for path in variants.values():
        if path.resolve() == source.resolve():
            raise ExportOptionsError(f"{path} is the source itself")
        check_writable(path, force=force)
        check_writable(sidecar_path(path), force=force)
    reports = derive_variants(source, variants, int8, eval_data, force, progress, keep_fp32=tuple(keep_fp32))
    report = ConvertReport(source, reports)
    report.seconds = time.perf_counter() - started
    return report


def check_keep_fp32(
    checkpoint: str | Path, names: tuple[str, ...], plan: ExportPlan, int8: Int8Settings, trust_pickle: bool
) -> tuple[str, ...]:
    """Refuse (ExportOptionsError) ``--keep-fp32`` names the model does not have, or nothing to keep them from.

    The checkpoint's architecture gives the names, so a typo costs no export.
    """
    if not names:
        return names
    if not plan.variants:
        raise ExportOptionsError("--keep-fp32 keeps blocks of an fp16/int8 variant in fp32: add --precision fp16/int8")
    if "int8" in plan.variants and int8.target == "cpu-dynamic":
        raise ExportOptionsError(KEEP_FP32_DYNAMIC)
    from acmix_deploy.checkpoint import read_checkpoint

    from .precision.blocks import keep_names_problem

    spec = read_checkpoint(checkpoint, trust_pickle=trust_pickle).spec
    if problem := keep_names_problem(spec.family, spec.hparams, names):
        raise ExportOptionsError(problem)
    return names


__all__ = ["ConvertReport", "check_keep_fp32", "convert", "derive_variant", "derive_variants", "plan_convert"]
