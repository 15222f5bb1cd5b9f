"""``export()``: one checkpoint to every artifact asked for (fp32 ONNX, fp16/int8 variants, TensorRT engines).

``acmix-deploy export`` is this call plus option parsing and printing. The order is what makes it safe:

1. :func:`plan_export` checks the options against each other and names every output (each ONNX,
   engine and sidecar) before any work, so a contradiction costs nothing;
2. every planned output is checked up front: without ``force`` an existing file is refused before
   the first one is written, and the directory stays as it was;
3. the fp32 ONNX is exported and validated (:mod:`acmix_deploy.exporters.onnx`), each fp16/int8
   variant is derived from it and proven against it (:mod:`acmix_deploy.exporters.variants`, the
   stage ``convert`` runs on an existing fp32 ONNX; :mod:`acmix_deploy.exporters.precision`),
   then one TensorRT engine per requested precision is built from the ONNX of that precision
   (:mod:`acmix_deploy.exporters.tensorrt`);
4. ``format="engine"`` keeps the engines only: every ONNX written on the way is removed with its
   sidecar (each engine's own sidecar embeds the manifest of the ONNX it was built from), also
   when a later stage fails. With ``"onnx"`` and ``"all"`` a failing stage leaves the artifacts
   finished before it, each complete and validated, and nothing of its own (writes are atomic).

The report names only files that exist when :func:`export` returns. Heavy packages are imported
inside :func:`export`: importing this module (the CLI does, for its option choices) costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.manifest import sidecar_path
from acmix_deploy.text import plain_name_problem

if TYPE_CHECKING:
    from .onnx import ExportReport as OnnxExportReport
    from .precision import PrecisionReport
    from .tensorrt import BuildReport

# The export vocabulary. Kept here, free of heavy imports, so the CLI can offer them as choices;
# tests/exporters/test_pipeline.py checks they equal what the converters themselves accept.
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("onnx", "engine", "all")
INT8_TARGETS = ("cpu", "cpu-dynamic", "tensorrt")  # cpu-dynamic: ONNX Runtime dynamic quantization
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_OPSET = 20  # Gelu (20) and LayerNormalization (17) export as single ops
MIN_OPSET = 17
DEFAULT_MAX_BATCH = 32
CHECKPOINT_SUFFIXES = (".pth.tar", ".safetensors", ".pth", ".pt", ".bin", ".ckpt")
ENGINE_SUFFIX = ".engine"

Progress = Callable[[str, str], None]


class ExportOptionsError(AcmixDeployError, ValueError):
    """The options of an export are out of range or contradict each other (bad usage, not a failure)."""


@dataclass(frozen=True)
class OnnxSettings:
    """How the fp32 ONNX is made (see :func:`acmix_deploy.exporters.onnx.export_onnx`).

    Attributes:
        opset: ONNX opset, at least 17.
        batch: a fixed batch size; ``None`` keeps the batch dynamic (fp16/int8 variants need that).
        max_batch: the largest batch a dynamic-batch artifact promises.
        img_size: input resolution (ACmix-ResNet; Swin-ACmix is fixed to its own).
        rewrite: export the exact deploy rewrite (default) or the reference model as is.
        measure_latency: time ONNX Runtime against the torch reference at the end.
        trust_pickle: unpickle anything in the checkpoint (only for files you trust).
        labels: class names in output order, recorded in every manifest.
    """

    opset: int = DEFAULT_OPSET
    batch: int | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    img_size: int | None = None
    rewrite: bool = True
    measure_latency: bool = True
    trust_pickle: bool = False
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Int8Settings:
    """How the int8 variant is quantized (see :mod:`acmix_deploy.exporters.precision`).

    Attributes:
        target: ``cpu`` (static U8/S8 for ONNX Runtime), ``cpu-dynamic`` (no calibration) or
            ``tensorrt`` (symmetric S8 Q/DQ, the only int8 form an engine can be built from).
        calibration: a folder of calibration images (static targets).
        samples: calibration images drawn from it.
        method: calibration method, one of :data:`CALIBRATION_METHODS`.
    """

    target: str = "cpu"
    calibration: Path | None = None
    samples: int = 256
    method: str = "minmax"


@dataclass(frozen=True)
class EngineSettings:
    """How TensorRT engines are built (see :func:`acmix_deploy.exporters.tensorrt.build_engine`)."""

    workspace_gb: float = 4.0
    timing_cache: Path | None = None


@dataclass(frozen=True)
class ExportPlan:
    """Every file an export writes, named before any work.

    Attributes:
        onnx: the fp32 ONNX (always written: every variant is derived from it).
        variants: precision -> its ONNX (``NAME.<precision>.onnx``).
        engines: precision -> (the ONNX it is built from, the engine).
        format: one of :data:`FORMATS`.
    """

    onnx: Path
    variants: dict[str, Path]
    engines: dict[str, tuple[Path, Path]]
    format: str

    def onnx_files(self) -> list[Path]:
        return [self.onnx, *self.variants.values()]

    def outputs(self) -> list[Path]:
        """Every file written on the way, sidecars included (each is checked before any work)."""
        files = [*self.onnx_files(), *(engine for _, engine in self.engines.values())]
        return [p for f in files for p in (f, sidecar_path(f))]

    def intermediates(self) -> list[Path]:
        """The files that do not stay: with ``format="engine"``, every ONNX and its sidecar."""
        if self.format != "engine":
            return []
        return [p for f in self.onnx_files() for p in (f, sidecar_path(f))]

    def check_writable(self, *, force: bool) -> None:
        """Refuse before any work an output that exists without ``force``, or that is (or is in) a symbolic link."""
        from acmix_deploy.fileio import check_writable

        for path in self.outputs():
            check_writable(path, force=force, linked_folder_ok=False)


def artifact_stem(path: str | Path) -> str:
    """The name artifacts of a checkpoint get: ``r50.pth.tar`` -> ``r50``."""
    name = Path(path).name
    for suffix in CHECKPOINT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def variant_path(fp32_onnx: str | Path, precision: str, output_dir: str | Path | None = None) -> Path:
    """Where the ``precision`` variant of ``fp32_onnx`` goes: ``model.onnx`` -> ``model.fp16.onnx`` (same folder)."""
    src = Path(fp32_onnx)
    return (Path(output_dir) if output_dir is not None else src.parent) / f"{src.stem}.{precision}.onnx"


def parse_precisions(precision: str | Sequence[str]) -> tuple[str, ...]:
    """``"fp32,fp16"`` or ``["fp32", "fp16"]`` -> ``("fp32", "fp16")`` (order kept, duplicates dropped)."""
    items = precision.split(",") if isinstance(precision, str) else list(precision)
    chosen = tuple(dict.fromkeys(str(p).strip() for p in items if str(p).strip()))
    if not chosen or any(p not in PRECISIONS for p in chosen):
        raise ExportOptionsError(
            f"--precision must be {', '.join(PRECISIONS)} or a comma-separated list of them, got {precision!r}"
        )
    return chosen


def check_options(precisions: Sequence[str], format: str, onnx: OnnxSettings, int8: Int8Settings) -> None:
    """Raise :class:`ExportOptionsError` for a value out of range or options that contradict each other."""
    if format not in FORMATS:
        raise ExportOptionsError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if onnx.batch is not None and onnx.batch < 1:
        raise ExportOptionsError(f"--batch must be >= 1, got {onnx.batch}")
    if onnx.max_batch < 1:
        raise ExportOptionsError(f"--max-batch must be >= 1, got {onnx.max_batch}")
    if onnx.opset < MIN_OPSET:
        raise ExportOptionsError(f"--opset must be >= {MIN_OPSET} (LayerNormalization), got {onnx.opset}")
    if int8.method not in CALIBRATION_METHODS or int8.target not in INT8_TARGETS:
        raise ExportOptionsError(
            f"--calib-method must be one of {', '.join(CALIBRATION_METHODS)} "
            f"and --int8-target one of {', '.join(INT8_TARGETS)}"
        )
    if int8.samples < 1:
        raise ExportOptionsError(f"--calib-samples must be >= 1, got {int8.samples}")
    reduced = [p for p in precisions if p != "fp32"]
    if reduced and onnx.batch is not None:
        raise ExportOptionsError("fp16/int8 variants need a dynamic-batch export; drop --batch")
    if "int8" in precisions:
        if int8.calibration is None and int8.target != "cpu-dynamic":
            raise ExportOptionsError(
                "--precision int8 needs --calib DIR (calibration images), except --int8-target cpu-dynamic"
            )
        if format != "onnx" and int8.target != "tensorrt":
            raise ExportOptionsError(
                "an int8 engine needs the TensorRT form: add --int8-target tensorrt (symmetric Q/DQ)"
            )


def plan_export(
    checkpoint: str | Path,
    output_dir: str | Path | None = None,
    *,
    name: str | None = None,
    precision: str | Sequence[str] = ("fp32",),
    format: str = "onnx",
    onnx: OnnxSettings = OnnxSettings(),
    int8: Int8Settings = Int8Settings(),
) -> ExportPlan:
    """Check the options and name every output of :func:`export` (nothing is read or written).

    Raises:
        ExportOptionsError: bad or contradicting options, or a name that would write outside ``output_dir``.
    """
    if name is not None and (problem := plain_name_problem(name)):
        raise ExportOptionsError(f"name {name!r}: {problem}")
    precisions = parse_precisions(precision)
    check_options(precisions, format, onnx, int8)
    checkpoint = Path(checkpoint)
    out_dir = Path(output_dir) if output_dir is not None else checkpoint.parent
    target = out_dir / f"{name or artifact_stem(checkpoint)}.onnx"
    variants = {p: variant_path(target, p) for p in precisions if p != "fp32"}
    engines: dict[str, tuple[Path, Path]] = {}
    if format != "onnx":  # one engine per requested precision, from the ONNX that carries its types
        sources = {"fp32": target} if "fp32" in precisions else {}
        engines = {p: (src, src.with_suffix(ENGINE_SUFFIX)) for p, src in {**sources, **variants}.items()}
    return ExportPlan(onnx=target, variants=variants, engines=engines, format=format)


@dataclass
class ExportReport:
    """What :func:`export` left on disk and what each stage measured.

    Attributes:
        plan: the outputs as planned.
        onnx: the fp32 export's report (its file is gone with ``format="engine"``).
        variants: one precision report per fp16/int8 variant, in the order asked for.
        engines: one build report per engine.
        removed: how many intermediate files (ONNX and sidecars) ``format="engine"`` removed.
        seconds: wall time of the whole export.
    """

    plan: ExportPlan
    onnx: OnnxExportReport
    variants: list[PrecisionReport] = field(default_factory=list)
    engines: list[BuildReport] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0

    def artifacts(self) -> list[Path]:
        """The files this export leaves, sidecars included (only files that exist)."""
        gone = set(self.plan.intermediates())
        return [p for p in self.plan.outputs() if p not in gone and p.exists()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fp32 export's figures, each variant and engine, and the files left."""
        data, kept = self.onnx.to_dict(), set(self.artifacts())
        if self.onnx.path not in kept:
            data.pop("path")
        data["format"] = self.plan.format
        data["artifacts"] = [str(p) for p in self.artifacts()]
        data["variants"] = [
            {"precision": v.precision, "result": v.describe(), **({"path": str(v.path)} if v.path in kept else {})}
            for v in self.variants
        ]
        data["engines"] = [e.to_dict() for e in self.engines]
        data["intermediates_removed"] = self.removed
        data["seconds"] = round(self.seconds, 3)
        return data

    def summary(self) -> list[tuple[str, str]]:
        """``(label, text)`` rows for a terminal: artifacts, model, graph, parity, variants, time, latency."""
        report, manifest = self.onnx, self.onnx.manifest
        batch = manifest.batch
        limits = f"1..{batch.max}" if batch.dynamic else str(batch.max)
        rows, kept = [], set(self.artifacts())
        if report.path in kept:
            rows.append(("artifact", f"{report.path} (+ {sidecar_path(report.path).name})"))
        rows += [("engine", f"{e.engine_path} ({e.precision})") for e in self.engines]
        rows += [
            ("model", f"{manifest.variant or manifest.family}, {manifest.img_size} px, batch {limits}"),
            ("nodes", f"{report.nodes}  (" + ", ".join(f"{k} {v}" for k, v in list(report.ops.items())[:6]) + ", ...)"),
            ("size", f"{report.size_bytes / 1e6:.1f} MB"),
            ("parity", report.parity.describe() if report.parity else "not checked"),
            *[
                (v.precision, f"{v.path.name}: {v.describe()}" if v.path in kept else v.describe())
                for v in self.variants
            ],
        ]
        if self.removed:
            rows.append(("removed", f"{self.removed} intermediate ONNX/sidecar files (--format engine)"))
        rows.append(("time", f"{self.seconds:.1f} s"))
        lat = report.latency_ms
        if lat:
            from .onnx import LATENCY_ROUNDS  # loaded already: a report comes from export_onnx

            rows.append(
                (
                    "latency",
                    f"ORT {lat['onnxruntime']:.1f} ms vs torch reference {lat['torch_reference']:.1f} ms at batch "
                    f"{batch.max if not batch.dynamic else 1} "
                    f"({lat['torch_reference'] / lat['onnxruntime']:.2f}x; median of {LATENCY_ROUNDS}, interleaved)",
                )
            )
        return rows


def export(
    checkpoint: str | Path,
    output_dir: str | Path | None = None,
    *,
    name: str | None = None,
    precision: str | Sequence[str] = ("fp32",),
    format: str = "onnx",
    onnx: OnnxSettings = OnnxSettings(),
    int8: Int8Settings = Int8Settings(),
    engine: EngineSettings = EngineSettings(),
    eval_data: str | Path | None = None,
    keep_fp32: Sequence[str] = (),
    force: bool = False,
    progress: Progress = lambda stage, message: None,
) -> ExportReport:
    """Export ``checkpoint`` to every artifact asked for, in ``output_dir`` (default: the checkpoint's).

    Args:
        checkpoint: an ACmix checkpoint (untrusted: read without running code unless
            ``onnx.trust_pickle``).
        output_dir: where the artifacts go.
        name: their file stem (default: the checkpoint's, ``r50.pth`` -> ``r50``).
        precision: any of :data:`PRECISIONS` (a list or ``"fp32,fp16"``); the fp32 ONNX is always
            made, each other precision adds ``NAME.<precision>.onnx``.
        format: ``onnx``, ``engine`` (engines only; the ONNX made on the way is removed) or ``all``.
        onnx: how the fp32 ONNX is made.
        int8: how the int8 variant is quantized.
        engine: how engines are built.
        eval_data: an image folder (class per sub-folder) on which each variant's accuracy is
            measured and recorded in its manifest.
        keep_fp32: stages/blocks/branches (``layer2.0``, ``stem/head``, ``layer3.1.attention``: the
            names ``profile`` and ``sensitivity`` print) kept in fp32 in the fp16 and static int8
            variants; recorded in their manifests (``kept_fp32``). Checked before any work.
        force: replace existing files.
        progress: ``callback(stage, message)`` after each stage.

    Raises:
        ExportOptionsError: bad or contradicting options (before any work).
        OutputExistsError: an output exists and ``force`` is not set (before any work).
        MissingDependencyError: an engine is asked for and TensorRT is missing (before any work).
        ExportError, ParityError, PrecisionError, BuildError, CheckpointError: a stage failed.
    """
    started = time.perf_counter()
    plan = plan_export(checkpoint, output_dir, name=name, precision=precision, format=format, onnx=onnx, int8=int8)
    if plan.engines:
        from acmix_deploy.runtimes.tensorrt import import_tensorrt

        import_tensorrt()  # fail fast, before the export, when TensorRT is missing
    if not Path(checkpoint).is_file():
        from acmix_deploy.errors import CheckpointError

        raise CheckpointError(f"{checkpoint}: no such file")
    plan.check_writable(force=force)
    from .variants import check_keep_fp32

    keep_fp32 = check_keep_fp32(checkpoint, tuple(keep_fp32), plan, int8, onnx.trust_pickle)
    labels = list(onnx.labels) if onnx.labels is not None else None
    written: list[Path] = []  # the ONNX files this run finished, in order
    try:
        from .onnx import export_onnx

        fp32 = export_onnx(
            checkpoint,
            plan.onnx,
            batch=onnx.batch,
            max_batch=onnx.max_batch,
            opset=onnx.opset,
            rewrite=onnx.rewrite,
            img_size=onnx.img_size,
            force=force,
            measure_latency=onnx.measure_latency,
            trust_pickle=onnx.trust_pickle,
            labels=labels,
            progress=progress,
        )
        written.append(plan.onnx)
        report = ExportReport(plan=plan, onnx=fp32)
        from .variants import derive_variants  # the variant stage, shared with convert()

        report.variants = derive_variants(
            plan.onnx, plan.variants, int8, eval_data, force, progress, keep_fp32=keep_fp32, written=written
        )
        if plan.engines:
            from .tensorrt import build_engine

            for engine_precision, (source, target) in plan.engines.items():
                report.engines.append(
                    build_engine(
                        source,
                        target,
                        precision=engine_precision,
                        workspace_gb=engine.workspace_gb,
                        timing_cache=engine.timing_cache,
                        force=force,
                        progress=progress,
                    )
                )
    finally:
        removed = remove_intermediates(plan, written)
    report.removed = removed
    report.seconds = time.perf_counter() - started
    return report


def remove_intermediates(plan: ExportPlan, written: Sequence[Path]) -> int:
    """With ``format="engine"``, remove each ONNX this run wrote and its sidecar; returns how many files went.

    Only files of ``written`` go: an ONNX a failed run never reached is left as it was.
    """
    doomed = set(plan.intermediates())
    removed = 0
    for path in (p for onnx_file in written for p in (onnx_file, sidecar_path(onnx_file))):
        if path in doomed and path.exists():
            path.unlink()
            removed += 1
    return removed


__all__ = [
    "CALIBRATION_METHODS",
    "FORMATS",
    "INT8_TARGETS",
    "PRECISIONS",
    "EngineSettings",
    "ExportOptionsError",
    "ExportPlan",
    "ExportReport",
    "Int8Settings",
    "OnnxSettings",
    "artifact_stem",
    "export",
    "parse_precisions",
    "plan_export",
    "variant_path",
]
