"""What every precision conversion shares: the fp32 source, the proofs, and writing the variant.

A conversion (:mod:`.fp16`, :mod:`.int8_static`, :mod:`.int8_dynamic`) loads an fp32 artifact
with :func:`load_fp32_source`, refuses clobbering with :func:`check_outputs` before any work,
proves its variant against the source in ONNX Runtime (:func:`random_parity`, and on real images
that calibration never saw, :func:`heldout_parity`; :func:`folder_accuracy`), and ends in
:func:`write_variant`, which times both models, records everything in the variant's typed manifest
and writes the ONNX plus its sidecar atomically. Keeping this in one place is what makes the three
conversions report and refuse alike.

Held-out images (:class:`HeldOut`): a variant is judged on images it was not calibrated on, or its
check proves only that calibration fits its own sample. They are the ``eval_dir`` folder when one
is given, else a seeded share of the calibration source that calibration never reads
(:func:`split_holdout`).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.fileio import check_writable
from acmix_deploy.manifest import Manifest, ManifestError, read_manifest, sidecar_path
from acmix_deploy.parity import ParityReport, Tolerance, compare_outputs, random_inputs
from acmix_deploy.runtimes.onnxruntime import ort_session

from ..graph import op_histogram, save_with_manifest

Run = Callable[[np.ndarray], np.ndarray]
"""A model as a function: preprocessed images (N, 3, S, S) float32 -> logits (N, classes)."""

PARITY_BATCHES = (1, 2, 7)
COMPARED_WITH = "fp32 ONNX in onnxruntime CPU"
HELDOUT_IMAGES = 256  # at most this many held-out images are compared (a seeded draw of a larger folder)
HELDOUT_FRACTION = 0.2  # the share of a calibration source held out of calibration when no eval_dir is given
MEASURE_ONLY = Tolerance(rtol=np.inf, min_cosine=-1.0, min_top1_agreement=0.0)  # records, never fails
QUANT_OPS = ("Conv", "MatMul", "Gemm")  # the op types static int8 quantizes (and the sensitivity pass considers)


class PrecisionError(AcmixDeployError):
    """The source cannot be converted, or the arguments are invalid."""


@dataclass
class PrecisionReport:
    """What one conversion wrote and measured (also stored as the variant manifest's ``precision_report``)."""

    path: Path
    precision: str
    source: str
    nodes: int
    ops: dict[str, int]
    size_bytes: int
    parity: dict
    accuracy: dict | None = None
    details: dict = field(default_factory=dict)
    speed: dict | None = None
    seconds: float = 0.0
    heldout: dict | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    def describe(self) -> str:
        p = self.parity
        text = (
            f"{self.precision}: max|diff| {p['max_abs_diff']:.3g} (ref scale {p['max_abs_ref']:.2f}), "
            f"cosine {p['cosine_min']:.5f}, top-1 agreement {p['top1_agreement']:.1%} vs fp32 on {p['inputs']}"
        )
        h = self.heldout
        if h and h.get("inputs") != p.get("inputs"):
            text += (
                f"; on {h['inputs']}: max|diff| {h['max_abs_diff']:.3g}, cosine {h['cosine_min']:.5f}, "
                f"top-1 agreement {h['top1_agreement']:.1%}"
            )
        if self.accuracy:
            acc = self.accuracy
            text += (
                f"; top-1 {acc['top1_percent']:.2f}% (fp32 {acc['fp32_top1_percent']:.2f}%, "
                f"agreement {acc['top1_agreement_percent']:.2f}%)"
            )
        if self.speed:
            s = self.speed
            from acmix_deploy.timing import SpeedComparison, speed_verdict

            text += f"; ORT CPU batch 1: {s['variant_p50_ms']:.2f} ms vs fp32 {s['fp32_p50_ms']:.2f} ms"
            comparison = SpeedComparison.from_record(s["speedup_vs_fp32"], s.get("noise_pct"))
            text += f" ({speed_verdict(comparison, 'fp32')})"  # a verdict only outside the measured noise
        return text


# ------------------------------------------------------------------------------------------ source


@dataclass
class Fp32Source:
    """The fp32 artifact a variant is made from: its path, graph, manifest, and an ORT CPU session of it."""

    path: Path
    model: onnx.ModelProto
    manifest: Manifest

    @cached_property
    def run(self) -> Run:
        """The source in ONNX Runtime CPU (one session per conversion: the speed measurement reuses it)."""
        return cpu_runner(self.model)


def load_fp32_source(src: str | Path) -> Fp32Source:
    """Load an fp32 acmix-deploy ONNX that can be converted.

    Raises:
        PrecisionError: no such file, not ONNX, no or bad manifest, not fp32, fixed batch, already
            quantized, or control flow.
    """
    src = Path(src)
    if not src.is_file():
        raise PrecisionError(f"{src}: no such ONNX file")
    try:
        model = onnx.load(str(src))
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise assorted types on garbage
        raise PrecisionError(f"{src}: not a readable ONNX model ({type(exc).__name__})") from None
    try:
        manifest = read_manifest(src)
    except ManifestError as exc:
        detail = str(exc).removeprefix(f"{src}: ")
        raise PrecisionError(f"{src}: not an acmix-deploy ONNX: {detail}") from None
    if manifest.precision != "fp32":
        raise PrecisionError(f"{src}: precision is {manifest.precision!r}; convert from the fp32 export")
    if not manifest.batch.dynamic:
        raise PrecisionError(
            f"{src}: a fixed-batch export ({manifest.batch.max}); fp16/int8 conversion validates and "
            "calibrates at several batch sizes, so export with a dynamic batch (no --batch)"
        )
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise PrecisionError(f"{src}: already quantized")
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in model.graph.node for a in n.attribute
    ):
        raise PrecisionError(f"{src}: graphs with control flow (If/Loop/Scan) are not supported")
    return Fp32Source(src, model, manifest)


def check_outputs(dst_onnx: str | Path, force: bool) -> Path:
    """Refuse before any work when the variant or its sidecar exists (without force) or cannot be written."""
    dst = Path(dst_onnx)
    check_writable(dst, force=force)
    check_writable(sidecar_path(dst), force=force)
    return dst


# ------------------------------------------------------------------------------------------ proofs


def cpu_runner(model: onnx.ModelProto) -> Run:
    """``model`` in an ONNX Runtime CPU session, as a function of the input batch."""
    session = ort_session(model)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def run_batched(run: Run, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Logits of ``images`` computed ``batch`` at a time (bounded memory for calibration sets)."""
    return np.concatenate([run(images[i : i + batch]) for i in range(0, len(images), batch)])


def random_parity(
    ref: Run, cand: Run, size: int, tolerance: Tolerance, batches: Sequence[int] = PARITY_BATCHES
) -> tuple[dict, ParityReport]:
    """Compare two models on seeded standard-normal batches: the report as JSON data and as an object."""
    xs = [random_inputs(b, size, seed=100 + i) for i, b in enumerate(batches)]
    report = compare_outputs([ref(x) for x in xs], [cand(x) for x in xs], list(batches), tolerance)
    return report.to_dict() | {"compared_with": COMPARED_WITH}, report


@dataclass(frozen=True)
class HeldOut:
    """Preprocessed images a variant is checked on and was never calibrated on, and where they came from.

    Attributes:
        images: NCHW float32, preprocessed as the manifest says.
        source: ``"eval_dir"`` (the evaluation folder) or ``"calibration split"`` (a share of the
            calibration source that calibration does not read).
        where: the folder, or ``"array"``.
        of: how many images the source held.
    """

    images: np.ndarray
    source: str
    where: str
    of: int

    def describe(self) -> str:
        n = len(self.images)
        if self.source == "eval_dir":
            return f"{n} of {self.of} held-out images of {self.where} (eval folder)"
        return f"{n} of {self.of} images of the calibration source {self.where}, held out of calibration"

    def record(self) -> dict:
        return {"source": self.source, "where": self.where, "images": len(self.images), "of": self.of}


def folder_files(root: str | Path, what: str) -> list[Path]:
    """The image files under ``root`` in a fixed order (the files ``evaluate`` would see)."""
    from acmix_deploy.imagefolder import images_under

    root = Path(root)
    if not root.is_dir():
        raise PrecisionError(f"{what} folder {root} does not exist")
    files = sorted(images_under(root))
    if not files:
        raise PrecisionError(f"no images under {root}")
    return files


def folder_heldout(root: str | Path, manifest: Manifest, limit: int = HELDOUT_IMAGES, seed: int = 1) -> HeldOut:
    """Up to ``limit`` images of an evaluation folder (a seeded draw, class folders mixed), preprocessed."""
    from acmix_deploy.preprocess import preprocess

    files = folder_files(root, "evaluation")
    order = sorted(np.random.default_rng(seed).permutation(len(files))[:limit])
    return HeldOut(preprocess([files[i] for i in order], manifest.preprocessing), "eval_dir", str(root), len(files))


def split_holdout(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept for calibration, held out)`` of a source of ``count`` images, seeded and disjoint.

    ``HELDOUT_FRACTION`` of the images (at least one, at most ``HELDOUT_IMAGES``) are held out;
    the order of the kept ones is the seeded permutation's, so drawing ``samples`` of them mixes classes.
    """
    if count < 2:
        raise PrecisionError(
            f"the calibration source has {count} image(s): validation holds some out of calibration, so give "
            "at least 2, or evaluation images (export --eval-data, sensitivity --data)"
        )
    held = min(HELDOUT_IMAGES, max(1, round(count * HELDOUT_FRACTION)))
    order = np.random.default_rng(seed).permutation(count)
    return order[held:], np.sort(order[:held])


def heldout_parity(fp32: Run, cand: Run, heldout: HeldOut, tolerance: Tolerance) -> tuple[dict, ParityReport]:
    """Compare the variant with fp32 on the held-out images: the report as JSON data and as an object."""
    ref, out = run_batched(fp32, heldout.images), run_batched(cand, heldout.images)
    report = compare_outputs([ref], [out], [len(ref)], tolerance, inputs=heldout.describe())
    return report.to_dict() | {"compared_with": COMPARED_WITH, "held_out": heldout.record()}, report


def folder_accuracy(fp32: Run, cand: Run, data_dir: str | Path, manifest: Manifest, limit: int | None = None) -> dict:
    """Top-1 of both models on an image folder and their agreement.

    Folders are placed among the model's classes as ``evaluate`` places them (WordNet ids, class
    names, any subset; else sorted folder order): :func:`acmix_deploy.imagefolder.index_for_model`.
    """
    from acmix_deploy.imagefolder import index_for_model
    from acmix_deploy.preprocess import preprocess

    index = index_for_model(data_dir, manifest.num_classes, labels=manifest.labels)
    samples = index.samples[:limit] if limit else index.samples
    labels = np.array([label for _, label in samples])
    p32, pc = [], []
    for start in range(0, len(samples), 32):
        x = preprocess([path for path, _ in samples[start : start + 32]], manifest.preprocessing)
        p32.append(fp32(x).argmax(1))
        pc.append(cand(x).argmax(1))
    fp32_top1, cand_top1 = np.concatenate(p32), np.concatenate(pc)
    return {
        "data_dir": str(data_dir),
        "images": len(samples),
        "top1_percent": round(100.0 * float(np.mean(cand_top1 == labels)), 4),
        "fp32_top1_percent": round(100.0 * float(np.mean(fp32_top1 == labels)), 4),
        "top1_agreement_percent": round(100.0 * float(np.mean(cand_top1 == fp32_top1)), 4),
    }


def cpu_speed_vs_fp32(fp32_run: Run, run: Run, img_size: int, rounds: int = 9) -> dict:
    """Batch-1 latency of the variant and its fp32 source in ONNX Runtime on this CPU, interleaved.

    Recorded so nobody ships an int8 model that is slower here than the fp32 one it replaces
    (without VNNI, or for small models, it often is). It says nothing about TensorRT on a GPU.
    """
    from acmix_deploy.timing import compare_speed, summarize, time_windows

    x = random_inputs(1, img_size, seed=11)
    timed = time_windows([lambda: fp32_run(x), lambda: run(x)], rounds=rounds, warmup_rounds=2)
    a, b = (summarize(samples).p50 for samples in timed.samples)
    comparison = compare_speed(*timed.samples)  # the per-round ratios' spread bounds any verdict
    return {
        "runtime": "onnxruntime CPUExecutionProvider",
        "batch": 1,
        "rounds": rounds,
        "fp32_p50_ms": round(a, 3),
        "variant_p50_ms": round(b, 3),
        "speedup_vs_fp32": round(a / b, 3),
        "noise_pct": comparison.to_dict()["noise_pct"],
        "verdict": comparison.verdict,
    }


# ----------------------------------------------------------------------------------------- writing


@dataclass
class ProvenVariant:
    """A converted model that passed its checks, with what they measured: ready to be written.

    ``run`` is the conversion's own ONNX Runtime session of the variant: the speed measurement
    reuses it rather than loading the model again.
    """

    model: onnx.ModelProto
    precision: str
    parity: dict
    run: Run
    accuracy: dict | None = None
    details: dict = field(default_factory=dict)
    int8_target: str | None = None
    calibration: dict | None = None
    kept_fp32: list[str] | None = None  # the stages/blocks/branches asked to stay fp32 (``--keep-fp32``)
    heldout: dict | None = None  # the check on real images it was not calibrated on (heldout_parity)


def variant_manifest(source: Manifest, variant: ProvenVariant, report: dict) -> Manifest:
    """The source's manifest, restated for the variant: precision, its parity and report, int8 records."""
    parity_key = f"onnxruntime_{variant.precision}_vs_fp32_onnx"
    return source.replace(
        precision=variant.precision,
        parity={**source.parity, parity_key: variant.parity},
        precision_report=report,
        int8_target=variant.int8_target,
        calibration=variant.calibration,
        kept_fp32=variant.kept_fp32,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_variant(
    source: Fp32Source, variant: ProvenVariant, dst: Path, *, force: bool, started: float
) -> PrecisionReport:
    """Time the variant against its source, write it with its manifest, and describe it.

    The common end of every conversion; ``started`` is its ``time.perf_counter()`` at the start.
    """
    speed = cpu_speed_vs_fp32(source.run, variant.run, source.manifest.img_size)
    report = {
        "precision": variant.precision,
        "parity": variant.parity,
        "accuracy": variant.accuracy,
        "details": variant.details,
        "speed": speed,
        "heldout": variant.heldout,
    }
    manifest = variant_manifest(source.manifest, variant, report)
    save_with_manifest(variant.model, manifest.to_json(), dst, force=force)
    return PrecisionReport(
        path=dst,
        precision=variant.precision,
        source=str(source.path),
        nodes=len(variant.model.graph.node),
        ops=op_histogram(variant.model),
        size_bytes=dst.stat().st_size,
        parity=variant.parity,
        accuracy=variant.accuracy,
        details=variant.details,
        speed=speed,
        seconds=time.perf_counter() - started,
        heldout=variant.heldout,
    )
