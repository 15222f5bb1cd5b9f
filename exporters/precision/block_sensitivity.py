"""Precision debugging by ACmix block: which stage, block or branch costs fp16/int8 its accuracy.

Tools that bisect a graph answer "run the first 1301 layers in higher precision". This pass asks
in the model's own terms instead (the units of :mod:`.blocks`: ``layer3.0``,
``layer3.0.attention``, ``stem/head``, the names ``profile`` prints). For each unit it measures,
against the fp32 ONNX on the same inputs (logit max abs error, cosine, top-1 agreement; int8
without ``data`` on images of ``calib`` its calibration never read: the held-out rule of :mod:`.common`):

* **kept**: everything reduced except that unit (an fp32 island in an fp16 or int8 model): how
  much error keeping it in fp32 removes. This direction ranks the units.
* **alone**: only that unit reduced, the rest fp32: the error it causes by itself.

and times the kept variant against the fully reduced one at batch 1 in ONNX Runtime (interleaved,
:mod:`acmix_deploy.timing`): what the island costs on this runtime. The keep list is the
best-ranked units (non-overlapping) whose island removes at least :data:`.sensitivity.SENSITIVITY_GAIN`
of the error or restores top-1 agreement; the union is measured once more. Reducing reuses the
converters: :func:`.fp16.convert_fp16` with a node block list, :class:`.int8_static.StaticQuantizer`
(calibrated once, cached) with nodes excluded. The node-group pass of :mod:`.sensitivity` decides
inside one int8 conversion; this one reports, for a person choosing ``export --keep-fp32``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from acmix_deploy.parity import compare_outputs, random_inputs

from .blocks import LEVELS, Unit, graph_units, parse_levels
from .common import MEASURE_ONLY, Fp32Source, PrecisionError, cpu_runner, load_fp32_source, run_batched
from .sensitivity import SENSITIVITY_GAIN

SENSITIVITY_PRECISIONS = ("fp16", "int8")
SENSITIVITY_INT8_TARGETS = ("cpu", "tensorrt")
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Error:
    """How far a variant's logits are from fp32's on the measured inputs."""

    max_abs: float
    mean_abs: float
    cosine_min: float
    top1_agreement: float

    @classmethod
    def between(cls, ref: np.ndarray, out: np.ndarray) -> Error:
        r = compare_outputs([ref], [out], [len(ref)], MEASURE_ONLY, inputs="sensitivity inputs")
        return cls(r.max_abs_diff, r.mean_abs_diff, r.cosine_min, r.top1_agreement)

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "mean_abs": self.mean_abs, "cosine_min": self.cosine_min,
                "top1_agreement": self.top1_agreement}  # fmt: skip

    def describe(self) -> str:
        return f"max|diff| {self.max_abs:.4g}, cosine {self.cosine_min:.6f}, top-1 agreement {self.top1_agreement:.1%}"


@dataclass(frozen=True)
class UnitSensitivity:
    """One unit: the error with it kept in fp32 (rest reduced), alone reduced, and its island's time."""

    unit: Unit
    kept: Error
    alone: Error | None
    island_ms: float | None  # batch-1 p50 with the unit in fp32 minus the fully reduced variant's
    island_noise_ms: float | None = None  # the timing noise (timing.compare_speed's) in ms: within it, no verdict

    def gain(self, full: Error) -> tuple[float, float]:
        """(top-1 agreement regained, share of the fully reduced max abs error removed): higher is better."""
        cut = 1.0 - self.kept.max_abs / full.max_abs if full.max_abs > 0 else 0.0
        return (self.kept.top1_agreement - full.top1_agreement, cut)

    def to_dict(self, full: Error) -> dict:
        agreement, cut = self.gain(full)
        return {**self.unit.to_dict(), "kept_fp32": self.kept.to_dict(),
                "alone": self.alone.to_dict() if self.alone else None, "agreement_gain": agreement,
                "error_cut": cut, "island_ms": self.island_ms,
                "island_noise_ms": self.island_noise_ms}  # fmt: skip


@dataclass
class SensitivityReport:
    """What :func:`block_sensitivity` measured, units best first, and the keep-in-fp32 list it suggests."""

    precision: str
    source: str
    inputs: str
    full: Error  # everything reduced
    units: list[UnitSensitivity]
    keep: list[str]
    keep_error: Error | None  # the keep list in fp32, the rest reduced
    speed: dict = field(default_factory=dict)
    seconds: float = 0.0
    held_out: dict | None = None  # int8 without data: the calibration split the measured images come from

    def to_dict(self) -> dict:
        return {
            "precision": self.precision, "source": self.source, "inputs": self.inputs,
            "fully_reduced": self.full.to_dict(), "units": [u.to_dict(self.full) for u in self.units],
            "keep_fp32": self.keep, "keep_fp32_error": self.keep_error.to_dict() if self.keep_error else None,
            "speed": self.speed, "seconds": round(self.seconds, 3), "held_out": self.held_out,
        }  # fmt: skip

    def table(self) -> str:
        p = self.precision
        lines = [
            f"{p} sensitivity of {Path(self.source).name} on {self.inputs}, vs fp32 in ONNX Runtime CPU",
            f"fully {p}: {self.full.describe()}",
            "",
            f"{'rank':>4}  {'unit':<24}{'kind':<7}{'nodes':>6} |{'kept fp32, rest ' + p:>34} |"
            f"{'only it ' + p:>20} | {'fp32 island':<13}",
            f"{'':>4}  {'':<24}{'':<7}{'':>6} |{'max|diff|':>11}{'cosine':>10}{'top-1':>7}{'cut':>6} |"
            f"{'max|diff|':>11}{'top-1':>8} | {'ms ± noise':<13}",
        ]
        for rank, u in enumerate(self.units, 1):
            _, cut = u.gain(self.full)
            alone = f"{u.alone.max_abs:>11.4g}{u.alone.top1_agreement:>8.1%}" if u.alone else f"{'-':>11}{'-':>8}"
            noise = "?" if u.island_noise_ms is None else f"{u.island_noise_ms:.2f}"
            island = f"{u.island_ms:>+7.2f} ±{noise:<5}" if u.island_ms is not None else f"{'-':>14}"
            lines.append(
                f"{rank:>4}  {u.unit.name:<24}{u.unit.kind:<7}{len(u.unit.nodes):>6} |{u.kept.max_abs:>11.4g}"
                f"{u.kept.cosine_min:>10.6f}{u.kept.top1_agreement:>7.1%}{cut:>6.0%} |{alone} |{island}"
            )
        lines.append("")
        if self.keep and self.keep_error is not None:
            lines.append(f"keep in fp32: {', '.join(self.keep)} -> {self.keep_error.describe()}")
        else:
            lines.append(f"keep in fp32: nothing (no unit removes >= {SENSITIVITY_GAIN:.0%} of the {p} error)")
        if self.speed:
            s = self.speed
            lines.append(
                f"fp32 island: batch-1 p50 with the unit in fp32 minus fully {p} ({s['rounds']} interleaved rounds "
                f"per unit; ± the noise of their per-round ratio, differences within it are noise); "
                f"fp32 {s['fp32_p50_ms']:.2f} ms, fully {p} {s['reduced_p50_ms']:.2f} ms"
            )
        return "\n".join(lines)


class _Reducer:
    """Makes the variant with some nodes kept in fp32 (names of ``graph``, which the units refer to)."""

    def __init__(self, precision: str, source: Fp32Source, calib: np.ndarray | None, target: str, workdir: Path):
        self.precision = precision
        if precision == "fp16":
            self.graph, self._source = source.model, source
        else:
            from .int8_static import Int8Options, StaticQuantizer

            options = Int8Options(target=target, samples=len(calib), sensitivity=False)
            self._quantizer = StaticQuantizer(source, calib, options, workdir)
            self.graph = self._quantizer.pre_model
        self.all_nodes = frozenset(n.name for n in self.graph.graph.node)

    def __call__(self, keep: frozenset[str]) -> onnx.ModelProto:
        if self.precision == "fp16":
            from .fp16 import DEFAULT_KEEP_FP32_OPS, convert_fp16

            return convert_fp16(self._source.model, DEFAULT_KEEP_FP32_OPS, keep)[0]
        return self._quantizer.quantize(sorted(keep)).model


def _images(
    source: Fp32Source, precision: str, data, calib, samples: int, calib_samples: int, seed: int
) -> tuple[np.ndarray, str, np.ndarray | None, dict | None]:
    """The measured inputs, their description, the int8 calibration images and where held-out inputs came from.

    int8 is never measured on images it was calibrated on (the held-out rule of :mod:`.common`):
    without ``data`` the calibration source is split as export's int8 check splits it
    (:func:`.int8_static.split_calibration`): calibration reads ``calib_samples`` of the kept share,
    and ``samples`` of the held-out share (a seeded draw) are measured. fp16 calibrates nothing, so
    it is measured on ``data``, else ``calib``'s images, else seeded standard-normal inputs.
    """
    from .int8_static import calibration_images, split_calibration

    if precision == "int8" and data is None:
        images, heldout = split_calibration(calib, source.manifest, calib_samples, seed=seed)
        pick = np.sort(np.random.default_rng(seed).permutation(len(heldout.images))[:samples])
        described = (
            f"{len(pick)} of the {len(heldout.images)} images of {Path(calib).name} held out of calibration "
            f"(of {heldout.of}; seed {seed})"
        )
        return heldout.images[pick], described, images, heldout.record()
    images = calibration_images(calib, source.manifest, calib_samples, seed=seed) if precision == "int8" else None
    folder = data if data is not None else calib
    if folder is not None:
        x = calibration_images(folder, source.manifest, samples, seed=seed)
        return x, f"{len(x)} images of {Path(folder).name} (seed {seed})", images, None
    x = random_inputs(samples, source.manifest.img_size, seed)
    return x, f"{samples} standard-normal inputs (seed {seed})", images, None


def _island_ms(full_run, kept_run, x1: np.ndarray, rounds: int) -> tuple[float | None, float | None]:
    """What the fp32 island costs at batch 1 (kept minus fully reduced p50, interleaved) and the timing noise.

    The noise is :func:`acmix_deploy.timing.compare_speed`'s (the spread of the per-round ratios), in ms
    of the fully reduced p50: a difference within it is exactly a "within noise" speed verdict. ``None``
    with fewer than 4 rounds (nothing to bound it).
    """
    if not rounds:
        return None, None
    from acmix_deploy.timing import compare_speed, summarize, time_windows

    reduced, kept = time_windows([lambda: full_run(x1), lambda: kept_run(x1)], rounds=rounds).samples
    noise = compare_speed(kept, reduced).noise
    base = summarize(reduced).p50
    island = round(summarize(kept).p50 - base, 3)
    return island, None if noise is None else round(noise * base, 3)


def _choose(units: list[UnitSensitivity], full: Error, max_keep: int, levels: Sequence[str]) -> list[UnitSensitivity]:
    """The best-ranked non-overlapping units whose island pays (stages only when only stages were asked for)."""
    candidates = units if set(levels) == {"stage"} else [u for u in units if u.unit.kind != "stage"]
    chosen: list[UnitSensitivity] = []
    covered: set[str] = set()
    for u in candidates:
        agreement, cut = u.gain(full)
        pays = agreement >= 0 and (agreement > 0 or cut >= SENSITIVITY_GAIN)
        if len(chosen) < max_keep and pays and covered.isdisjoint(u.unit.nodes):
            chosen.append(u)
            covered |= set(u.unit.nodes)
    return chosen


def _open_source(artifact: str | Path, stack: ExitStack, img_size: int | None, trust_pickle: bool) -> Fp32Source:
    """The fp32 ONNX to start from: ``artifact`` itself, or a checkpoint exported into a temporary folder."""
    path = Path(artifact)
    if path.suffix == ".onnx":
        return load_fp32_source(path)
    if not path.is_file():
        raise PrecisionError(f"{path}: no such file")
    from ..onnx import export_onnx

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="acmix-sensitivity.")))
    export_onnx(path, tmp / f"{path.stem}.onnx", img_size=img_size, trust_pickle=trust_pickle, validate_batches=[2])
    return load_fp32_source(tmp / f"{path.stem}.onnx")


def check_options(
    precision: str,
    calib: str | Path | None,
    int8_target: str = "cpu",
    samples: int = 1,
    calib_samples: int = 1,
    timing_rounds: int = 0,
    max_keep: int = 0,
) -> None:
    """The checks :func:`block_sensitivity` makes of its options before any work, one wording for library and CLI
    (``acmix-deploy sensitivity`` makes them first and reports a refusal as a usage error).

    Raises:
        PrecisionError: an unknown precision or int8 target, int8 without calibration images, a count out of range.
    """
    if precision not in SENSITIVITY_PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(SENSITIVITY_PRECISIONS)}, got {precision!r}")
    if precision == "int8" and calib is None:
        raise PrecisionError("int8 sensitivity needs calibration images (calib / --calib DIR)")
    if int8_target not in SENSITIVITY_INT8_TARGETS:
        raise PrecisionError(f"int8 target must be one of {', '.join(SENSITIVITY_INT8_TARGETS)}, got {int8_target!r}")
    if samples < 1 or calib_samples < 1 or timing_rounds < 0 or max_keep < 0:
        raise PrecisionError("samples and calib_samples must be >= 1, timing_rounds and max_keep >= 0")


def block_sensitivity(
    artifact: str | Path,
    precision: str,
    *,
    data: str | Path | None = None,
    calib: str | Path | None = None,
    samples: int = 32,
    calib_samples: int = 64,
    seed: int = 0,
    levels: str | Sequence[str] = LEVELS,
    alone: bool = True,
    timing_rounds: int = 7,
    max_keep: int = 3,
    int8_target: str = "cpu",
    img_size: int | None = None,
    trust_pickle: bool = False,
    progress: Progress = lambda stage, message: None,
) -> SensitivityReport:
    """Rank an ACmix model's stages, blocks and branches by the fp16/int8 error they cost.

    Args:
        artifact: an fp32 acmix-deploy ONNX, or a checkpoint (exported first, into a temporary folder).
        precision: ``"fp16"`` or ``"int8"`` (static, calibrated on ``calib``).
        data: an image folder the errors are measured on (``samples`` images drawn with ``seed``).
            Without it, int8 splits ``calib`` as export's int8 check does and is measured on
            images of the share calibration never reads; fp16 on ``calib``'s images, else on
            seeded standard-normal inputs.
        calib: int8 calibration images (a folder; ``calib_samples`` drawn, from the kept share
            when there is no ``data``).
        samples, calib_samples, seed: how many images are measured / calibrated on, and the draw.
        levels: which of ``stage``, ``block``, ``branch`` to rank (a list, or comma-separated);
            checked before any work (:func:`.blocks.parse_levels`).
        alone: also measure each unit reduced alone (the rest fp32): one more conversion per unit.
        timing_rounds: interleaved batch-1 rounds per unit timing its fp32 island (0: no timing).
        max_keep: at most this many units in the keep list.
        int8_target: ``cpu`` or ``tensorrt`` (the quantization form, as ``export --int8-target``).
        img_size, trust_pickle: for a checkpoint, as ``export``.
        progress: ``callback(stage, message)`` after each unit.

    The ranking depends only on the inputs (``seed``), never on timing: two runs rank alike.

    Raises:
        PrecisionError: bad arguments (an unknown level...), an unusable artifact, or int8 without ``calib``.
    """
    started = time.perf_counter()
    levels = parse_levels(levels)
    check_options(precision, calib, int8_target, samples, calib_samples, timing_rounds, max_keep)
    with ExitStack() as stack:
        source = _open_source(artifact, stack, img_size, trust_pickle)
        x, described, images, held_out = _images(source, precision, data, calib, samples, calib_samples, seed)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="acmix-sensitivity.")))
        reduce = _Reducer(precision, source, images, int8_target, workdir)
        units = graph_units(reduce.graph, source.manifest, levels)
        if not units:
            raise PrecisionError(f"{source.path}: no ACmix blocks found in the graph (a generic model?)")
        ref = run_batched(source.run, x)
        full_run = cpu_runner(reduce(frozenset()))
        full = Error.between(ref, run_batched(full_run, x))
        progress(precision, f"fully {precision}: {full.describe()}")
        x1, results = x[:1], []
        for unit in units:
            kept_run = cpu_runner(reduce(frozenset(unit.nodes)))
            kept = Error.between(ref, run_batched(kept_run, x))
            alone_error = None
            if alone:
                alone_error = Error.between(ref, run_batched(cpu_runner(reduce(reduce.all_nodes - set(unit.nodes))), x))
            results.append(UnitSensitivity(unit, kept, alone_error, *_island_ms(full_run, kept_run, x1, timing_rounds)))
            progress(unit.kind, f"{unit.name}: kept fp32 {kept.describe()}")
        order = {u.unit.name: i for i, u in enumerate(results)}
        results.sort(key=lambda u: (*(-g for g in u.gain(full)), -(u.alone.max_abs if u.alone else 0.0),
                                    order[u.unit.name]))  # fmt: skip
        chosen = _choose(results, full, max_keep, levels)
        keep_error = None
        if chosen:
            nodes = frozenset(n for u in chosen for n in u.unit.nodes)
            keep_error = Error.between(ref, run_batched(cpu_runner(reduce(nodes)), x))
        speed = {}
        if timing_rounds:
            from acmix_deploy.timing import time_interleaved

            stats = time_interleaved(
                {"fp32": lambda: source.run(x1), "reduced": lambda: full_run(x1)}, rounds=timing_rounds
            )
            speed = {"rounds": timing_rounds, "batch": 1, "fp32_p50_ms": round(stats["fp32"].p50, 3),
                     "reduced_p50_ms": round(stats["reduced"].p50, 3)}  # fmt: skip
    return SensitivityReport(
        precision=precision,
        source=str(artifact),
        inputs=described,
        full=full,
        units=results,
        keep=[u.unit.name for u in chosen],
        keep_error=keep_error,
        speed=speed,
        held_out=held_out,
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "SENSITIVITY_INT8_TARGETS",
    "SENSITIVITY_PRECISIONS",
    "Error",
    "SensitivityReport",
    "UnitSensitivity",
    "block_sensitivity",
    "check_options",
]
