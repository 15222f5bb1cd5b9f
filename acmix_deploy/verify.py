"""Artifacts against each other on the same inputs (``acmix-deploy verify``): reproducible, precision-aware.

The inputs of a comparison can be saved and loaded back (``.npz``, see
:func:`acmix_deploy.side_by_side.load_inputs`), so a run can be repeated exactly or shared; every
artifact's outputs can be saved too. Each artifact is judged against the first with the tolerance
its precision warrants: an fp16 or int8 variant is not held to fp32 bounds. The default comes from
:data:`acmix_deploy.parity.PRECISION_TOLERANCES`, tightened or loosened by the bounds the variant was
proven to at export (its manifest's ``precision_report``); a bound the user passes wins. What the
export measured is reported next to what this run measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import AcmixDeployError
from .parity import (
    INT8_RANDOM_INPUTS_TOLERANCE,
    PRECISION_TOLERANCES,
    RANDOM_INPUTS,
    ParityReport,
    Tolerance,
    compare_outputs,
    format_percentiles,
    random_inputs,
)
from .side_by_side import (
    INPUTS_KIND,
    RecordedPrecision,
    load_inputs,
    npz_bytes,
    open_runners,
    output_file_names,
    recorded_precision,
)


@dataclass(frozen=True)
class ToleranceChoice:
    """The bounds one artifact is judged by, and where they came from (``"fp32 default"``, ``"user"``...)."""

    tolerance: Tolerance
    source: str


def _recorded_bounds(parity: dict | None) -> dict:
    """The bounds an export proved a variant to (its recorded tolerance), only those that bound anything."""
    recorded = parity.get("tolerance") if isinstance(parity, dict) else None
    if not isinstance(recorded, dict):
        return {}
    bounds = {}
    for key, no_bound in (("rtol", math.inf), ("min_cosine", 0.0), ("min_top1_agreement", 0.0)):
        value = recorded.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if (key == "rtol" and 0 <= value < no_bound) or (key != "rtol" and no_bound < value <= 1):
                bounds[key] = float(value)
    return bounds


def default_tolerance(reference: RecordedPrecision, candidate: RecordedPrecision, on_images: bool) -> ToleranceChoice:
    """The tolerance a comparison of ``candidate`` with ``reference`` deserves, from their precisions.

    Both fp32 (or checkpoints): fp32's bounds. Otherwise each variant side gives its precision's
    entry of ``PRECISION_TOLERANCES`` (unknown precisions: fp16's), with the bounds its export
    proved it to in place of the table's where recorded (on images: those of its held-out check);
    a calibrated int8 variant on random inputs gets ``INT8_RANDOM_INPUTS_TOLERANCE`` (they are not
    what it was calibrated for). The looser side wins.
    """
    choice = PRECISION_TOLERANCES["fp32"]
    sources = []
    for side in (reference, candidate):
        precision = side.precision or "fp32"
        if precision == "fp32":
            continue
        if precision == "int8" and side.calibrated and not on_images:
            choice = choice.loosest(INT8_RANDOM_INPUTS_TOLERANCE)
            sources.append("int8 on random inputs")
            continue
        table = PRECISION_TOLERANCES.get(precision, PRECISION_TOLERANCES["fp16"])
        bounds = _recorded_bounds(side.heldout if on_images and side.heldout else side.parity)
        choice = choice.loosest(replace(table, **bounds))
        sources.append(f"{precision}{' + recorded at export' if bounds else ''}")
    return ToleranceChoice(choice, ", ".join(sources) or "fp32")


@dataclass
class Comparison:
    """One artifact against the reference."""

    artifact: str
    precision: str
    report: ParityReport
    tolerance_source: str
    recorded: dict | None = None  # what the export measured against fp32 on the same kind of inputs

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "precision": self.precision,
            "passed": self.report.passed,
            "tolerance_source": self.tolerance_source,
            "parity": self.report.to_dict(),
            "recorded_at_export": self.recorded,
        }


@dataclass
class VerifyReport:
    """A whole ``verify`` run: the reference, the inputs, one :class:`Comparison` per other artifact."""

    reference: str
    reference_precision: str
    inputs: dict
    comparisons: list[Comparison]
    saved: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.report.passed for c in self.comparisons)

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "reference_precision": self.reference_precision,
            "inputs": self.inputs,
            "passed": self.passed,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "saved": self.saved,
        }


def _recorded_figures(recorded: RecordedPrecision, on_images: bool) -> dict | None:
    """The export's own parity figures on inputs like this run's (random or images), when recorded."""
    if on_images:
        parity = recorded.heldout or recorded.parity
    else:
        parity = recorded.random_parity if recorded.calibrated else recorded.parity
    if not isinstance(parity, dict):
        return None
    keys = ("max_abs_diff", "max_abs_ref", "cosine_min", "top1_agreement", "inputs", "abs_error", "rel_error")
    return {k: parity[k] for k in keys if k in parity}


def _check_destinations(artifacts: Sequence[Path], save_inputs, save_outputs, force: bool) -> list[Path]:
    from .fileio import check_writable

    if save_inputs is not None:
        check_writable(save_inputs, force=force)
    if save_outputs is None:
        return []
    folder = Path(save_outputs)
    if folder.exists() and not folder.is_dir():
        raise AcmixDeployError(f"{folder}: --save-outputs expects a directory")
    outputs = [folder / name for name in output_file_names(artifacts)]
    for path in outputs:
        check_writable(path, force=force)
    return outputs


def verify(
    artifacts: Sequence[str | Path],
    *,
    batch: int = 4,
    seed: int = 0,
    images: Sequence[str | Path] | None = None,
    load_inputs_from: str | Path | None = None,
    tolerance: dict | None = None,
    rewrite: bool = True,
    img_size: int | None = None,
    save_inputs: str | Path | None = None,
    save_outputs: str | Path | None = None,
    force: bool = False,
) -> VerifyReport:
    """Run the same inputs through every artifact and compare each with the first (the CLI's ``verify``).

    Args:
        artifacts: two or more checkpoints, ONNX models or engines; the first is the reference.
        batch, seed: how many standard-normal inputs to draw, and from which seed (no images/inputs file).
        images: image files, preprocessed with the first artifact's manifest, as a Predictor does.
        load_inputs_from: an ``.npz`` written by ``save_inputs``: the run repeats exactly.
        tolerance: bounds that override the precision-aware defaults, any of ``rtol`` (max|diff| in
            units of max(1, max|reference|)), ``min_cosine``, ``min_top1_agreement``.
        rewrite, img_size: how checkpoints run (deploy rewrite or reference; their input size).
        save_inputs: write the inputs used to this ``.npz``.
        save_outputs: write each artifact's outputs to ``<dir>/<artifact file name>.npz``.
        force: replace existing output files (refused before any work otherwise).

    Raises:
        AcmixDeployError: fewer than two artifacts, images together with an inputs file, an inputs
            file that does not fit, artifacts that disagree on the input size, or a file in the way.
    """
    from .fileio import atomic_write_bytes
    from .preprocess import preprocess

    paths = [Path(a) for a in artifacts]
    if len(paths) < 2:
        raise AcmixDeployError("verify needs at least two artifacts")
    if images and load_inputs_from is not None:
        raise AcmixDeployError("give images or an inputs file (--image or --load-inputs), not both")
    unknown = set(tolerance or {}) - {f.name for f in Tolerance.__dataclass_fields__.values()}
    if unknown:
        raise AcmixDeployError(f"unknown tolerance fields {sorted(unknown)}")
    outputs = _check_destinations(paths, save_inputs, save_outputs, force)
    with ExitStack() as stack:  # every runner is closed, also when one fails to load or run
        runners = open_runners(paths, rewrite=rewrite, img_size=img_size)  # loaded by their manifests below
        for runner in runners:
            stack.callback(runner.close)
        sizes = {r.manifest.img_size for r in runners}
        if len(sizes) != 1:
            raise AcmixDeployError(f"artifacts disagree on the input size: {sorted(sizes)}")
        first = runners[0].manifest
        if load_inputs_from is not None:
            x, kind = load_inputs(load_inputs_from, first.input_name, first.img_size)
            text = f"{len(x)} inputs ({kind}) from {load_inputs_from}"
            described = {"kind": kind, "file": str(load_inputs_from), "text": text}
        elif images:
            x = preprocess([str(p) for p in images], first.preprocessing)
            pre = first.preprocessing
            text = f"{len(x)} images (resize {pre.resize}, crop {pre.crop}, {pre.interpolation})"
            described = {"kind": "images", "images": [str(p) for p in images], "text": text}
        else:
            x = random_inputs(batch, first.img_size, seed=seed)
            described = {"kind": "random", "seed": seed, "text": f"{len(x)} inputs, {RANDOM_INPUTS} (seed {seed})"}
        described["count"] = len(x)
        logits = [r.infer(x) for r in runners]
    on_images = described["kind"] != "random"
    recorded = [recorded_precision(p, r.manifest) for p, r in zip(paths, runners, strict=True)]
    comparisons = []
    for runner, out, rec in zip(runners[1:], logits[1:], recorded[1:], strict=True):
        choice = default_tolerance(recorded[0], rec, on_images)
        bounds = choice.tolerance
        if tolerance:
            bounds = replace(bounds, **tolerance)
        report = compare_outputs([logits[0]], [out], [len(x)], bounds, inputs=described["text"])
        source = choice.source + (f"; user {', '.join(sorted(tolerance))}" if tolerance else "")
        precision = rec.precision or runner.manifest.precision
        comparisons.append(Comparison(runner.describe(), precision, report, source, _recorded_figures(rec, on_images)))
    saved = []
    if save_inputs is not None:
        saved.append(
            str(
                atomic_write_bytes(
                    save_inputs, npz_bytes({first.input_name: x, INPUTS_KIND: np.array(described["kind"])}), force=force
                )
            )
        )
    for path, runner, out in zip(outputs, runners, logits, strict=bool(outputs)):
        saved.append(str(atomic_write_bytes(path, npz_bytes({runner.manifest.output_name: out}), force=force)))
    reference_precision = recorded[0].precision or runners[0].manifest.precision
    return VerifyReport(runners[0].describe(), reference_precision, described, comparisons, saved)


def _bounds(t: dict) -> str:
    agreement = t["min_top1_agreement"]
    return f"max|diff| <= {t['rtol']:.3g} x max(1, ref), cosine >= {t['min_cosine']}, top-1 >= {agreement:.0%}"


def format_verify(report: VerifyReport) -> str:
    """The text ``verify`` prints: a PASS/FAIL table with the error distribution, then each bound and record."""
    lines = [f"reference: {report.reference} [{report.reference_precision}]  ({report.inputs['text']})"]
    header = (
        f"  {'':4}  {'artifact':<34} {'precision':<9} {'max|diff|':>9} {'cosine':>10} {'top-1':>6}"
        f"  {'|diff| p50 / p90 / p99':<27}  {'relative p50 / p90 / p99':<27}"
    )
    lines.append(header.rstrip())
    for c in report.comparisons:
        r = c.report
        spread = [format_percentiles(d, " / ") for d in (r.abs_error, r.rel_error)]
        lines.append(
            f"  {'PASS' if r.passed else 'FAIL'}  {c.artifact:<34} {'[' + c.precision + ']':<9} {r.max_abs_diff:>9.2e}"
            f" {r.cosine_min:>10.7f} {r.top1_agreement:>6.0%}  {spread[0]:<27}  {spread[1]}"
        )
    for c in report.comparisons:
        lines.append(f"  {c.artifact}: tolerance ({c.tolerance_source}) {_bounds(c.report.tolerance)}")
        rec = c.recorded
        if rec and {"max_abs_diff", "cosine_min", "top1_agreement"} <= rec.keys():
            lines.append(
                f"    recorded at export: max|diff| {rec['max_abs_diff']:.2e}, cosine {rec['cosine_min']:.7f}, "
                f"top-1 {rec['top1_agreement']:.1%} on {rec.get('inputs', '?')}"
            )
    if any("int8 on random" in c.tolerance_source for c in report.comparisons):
        lines.append(
            "  note: random inputs lie outside a calibrated int8 model's ranges; --image or --load-inputs "
            "with real images checks it properly"
        )
    lines += [f"  wrote {path}" for path in report.saved]
    return "\n".join(lines)


__all__ = ["Comparison", "ToleranceChoice", "VerifyReport", "default_tolerance", "format_verify", "verify"]
