"""``build_engine``: the TensorRT build as a sequence of stages, each in its own module.

1. :func:`prepare_build`, before TensorRT is imported: arguments, outputs (:mod:`.sidecar`), the
   ONNX's manifest and input (:mod:`.network`), the batch profiles (:mod:`.profile`);
2. the CPU readiness check and the precision plan for this TensorRT (:mod:`.precision_flags`);
3. :func:`compile_plan`: the network parsed from the ONNX path (:mod:`.network`), the builder
   config with flags, profile and timing cache (:mod:`.config`), the serialized plan (:mod:`.plan`);
4. the engine, its sidecar and optional layer info, written atomically (:mod:`.sidecar`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from acmix_deploy.fileio import sha256_file
from acmix_deploy.manifest import Manifest, sidecar_path
from acmix_deploy.runtimes.tensorrt import cuda_device_info, import_tensorrt, trt_major

from .base import PRECISIONS, BuildError, Progress, no_progress
from .config import BuilderSettings, attach_timing_cache, create_builder_config, read_timing_cache, save_timing_cache
from .network import parse_network, read_onnx_manifest, refuse_unready_graph
from .plan import build_serialized_plan, create_builder, inspect_plan_layers, make_logger
from .precision_flags import PrecisionPlan, precision_plan
from .profile import ProfileShapes, compute_profile, compute_profiles, parse_profile, served_profile
from .sidecar import check_engine_outputs, make_engine_sidecar, write_engine_files


@dataclass
class BuildReport:
    """What :func:`build_engine` made, and how."""

    engine_path: Path
    sidecar_path: Path
    layers_path: Path | None
    precision: str
    profile: ProfileShapes
    trt_version: str
    gpu: dict
    build_seconds: float
    size_bytes: int
    timing_cache: Path | None = None
    warnings: list[str] = field(default_factory=list)
    profiles: list[ProfileShapes] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            engine_path=str(self.engine_path),
            sidecar_path=str(self.sidecar_path),
            layers_path=str(self.layers_path) if self.layers_path else None,
            timing_cache=str(self.timing_cache) if self.timing_cache else None,
            profile=self.profile.to_dict(),
            profiles=[p.to_dict() for p in self.profiles],
        )
        return data


@dataclass
class BuildRequest:
    """Stage 1's result: everything decided before TensorRT is imported.

    Attributes:
        onnx_path, engine_path: source and destination.
        precision: the engine precision asked for.
        manifest: the ONNX's manifest.
        profile: the batches the engine serves as one range (its only profile, or the union of
            several as far as no batch in between is missing; see :func:`~.profile.served_profile`).
        settings: workspace, optimisation level, profiling, timing cache.
        timing_cache_blob: the cache's bytes (``b""`` for a new one), ``None`` without a cache.
        graph: the ONNX graph (no external weights) for the readiness check, dropped after it.
        profiles: every optimisation profile, in engine order.
        notes: what the caller should know (profiles left out of the served range).
    """

    onnx_path: Path
    engine_path: Path
    precision: str
    manifest: Manifest
    profile: ProfileShapes
    settings: BuilderSettings
    timing_cache_blob: bytes | None
    graph: onnx.ModelProto | None
    profiles: list[ProfileShapes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare_build(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: str = "fp32",
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    profiles: Sequence[str | tuple[int, int, int]] | None = None,
    settings: BuilderSettings | None = None,
    force: bool = False,
    progress: Progress = no_progress,
) -> BuildRequest:
    """Stage 1, on any machine: check the arguments and outputs, read the ONNX, decide the profiles.

    ``profiles`` (``"MIN:OPT:MAX"`` strings or tuples) replaces ``min_batch``/``opt_batch``/``max_batch``.

    Raises:
        BuildError: bad arguments or ONNX; OutputExistsError: an output exists and ``force`` is false.
    """
    if profiles and (min_batch != 1 or opt_batch is not None or max_batch is not None):
        raise BuildError("give the batch sizes either as profiles or as min/opt/max batch, not both")
    requests = [parse_profile(p) if isinstance(p, str) else tuple(int(b) for b in p) for p in profiles or ()]
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    settings = settings or BuilderSettings()
    check_engine_outputs(engine_path, layers=settings.detailed_profiling, force=force)
    blob = read_timing_cache(settings.timing_cache) if settings.timing_cache else None
    manifest, input_name, input_shape, graph = read_onnx_manifest(onnx_path)
    if requests:
        shapes = compute_profiles(input_name, input_shape, manifest.batch, requests)
    else:
        shapes = [
            compute_profile(
                input_name, input_shape, manifest.batch, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch
            )
        ]
    for index, p in enumerate(shapes):
        progress("profile", f"{input_name} profile {index}: min {p.min}, opt {p.opt}, max {p.max}")
    served, note = served_profile(shapes)
    if note:
        progress("profile", note)
    notes = [note] if note else []
    return BuildRequest(onnx_path, engine_path, precision, manifest, served, settings, blob, graph, shapes, notes)


@dataclass
class CompiledPlan:
    """Stages 3-5's result: the serialized plan, the parse + build time, and the logger that saw it."""

    plan: bytes
    seconds: float
    logger: Any


def compile_plan(trt: Any, request: BuildRequest, flags: PrecisionPlan, progress: Progress) -> CompiledPlan:
    """Stages 3-5: parse the network, configure the builder, build the plan (timing cache read and saved).

    Raises:
        BuildError: no builder (no GPU), parser errors, or a failed build.
    """
    settings = request.settings
    logger = make_logger(trt)
    builder = create_builder(trt, logger)
    t0 = time.perf_counter()
    parsed = parse_network(trt, builder, logger, request.onnx_path, flags, request.profile.input_name, progress)
    config = create_builder_config(trt, builder, flags, request.profiles, settings)
    if request.timing_cache_blob is not None:
        attach_timing_cache(config, request.timing_cache_blob, settings.timing_cache, progress)
    progress("build", f"building {request.precision} engine (this takes a while)")
    plan = build_serialized_plan(trt, builder, parsed.network, config, logger, progress)
    seconds = time.perf_counter() - t0
    progress("build", f"done in {seconds:.1f} s ({len(plan) / 1e6:.1f} MB)")
    if request.timing_cache_blob is not None:
        save_timing_cache(config, settings.timing_cache)
    return CompiledPlan(plan, seconds, logger)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: str = "fp32",
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    profiles: Sequence[str | tuple[int, int, int]] | None = None,
    workspace_gb: float = 4.0,
    timing_cache: str | Path | None = None,
    builder_optimization_level: int | None = None,
    inspector_json: bool = False,
    version_compatible: bool = False,
    exclude_lean_runtime: bool = False,
    hardware_compatibility: str = "none",
    force: bool = False,
    progress: Progress = no_progress,
) -> BuildReport:
    """Build ``engine_path`` from an acmix-deploy ONNX, with its sidecar ``<engine>.json``.

    Args:
        onnx_path: an ONNX written by ``exporters.onnx.export_onnx`` (it needs the manifest).
        engine_path: destination plan (``.engine``/``.plan``).
        precision: ``fp32``, ``fp16`` or ``int8`` (see :func:`~.precision_flags.precision_plan`).
        min_batch, opt_batch, max_batch: the batch profile (see :func:`~.profile.compute_profile`).
        profiles: several optimisation profiles instead, ``"MIN:OPT:MAX"`` each (e.g. ``["1:1:4",
            "8:16:32"]``): small batches and large ones each get kernels tuned for them; the sidecar
            records all, the runner picks the one holding each batch.
        workspace_gb: builder workspace memory pool limit.
        timing_cache: a timing-cache file to read (if present) and write back (it is a cache:
            updated in place whatever ``force`` says).
        builder_optimization_level: 0..5 (TensorRT's default is 3); ``None`` keeps the default.
        inspector_json: also write engine-inspector layer info (``<engine>.layers.json``); builds
            with ``ProfilingVerbosity.DETAILED``.
        version_compatible: an engine later TensorRT releases run (``VERSION_COMPATIBLE``; NVIDIA's
            rules in :mod:`acmix_deploy.runtimes.tensorrt_compat`); the sidecar records it.
        exclude_lean_runtime: with ``version_compatible``, leave the lean runtime out of the plan.
        hardware_compatibility: ``none`` (this kind of GPU only), ``ampere-plus`` or
            ``same-compute-capability``.
        force: replace existing engine/sidecar/layer files.
        progress: ``callback(stage, message)``; ``print`` works.

    Raises:
        BuildError, MissingDependencyError, OutputExistsError.
    """
    settings = BuilderSettings(
        workspace_gb=workspace_gb,
        optimization_level=builder_optimization_level,
        detailed_profiling=inspector_json,
        timing_cache=Path(timing_cache) if timing_cache is not None else None,
        version_compatible=version_compatible,
        exclude_lean_runtime=exclude_lean_runtime,
        hardware_compatibility=hardware_compatibility,
    )
    request = prepare_build(
        onnx_path,
        engine_path,
        precision=precision,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        profiles=profiles,
        settings=settings,
        force=force,
        progress=progress,
    )
    trt = import_tensorrt()
    version = str(trt.__version__)
    warnings = refuse_unready_graph(request.graph, request.onnx_path.name, trt_major(version), progress)
    request.graph = None  # the parser reads the file itself; the graph need not stay in memory
    flags = precision_plan(
        precision,
        trt_version=version,
        onnx_precision=request.manifest.precision,
        builder_flags=set(trt.BuilderFlag.__members__),
        network_flags=set(trt.NetworkDefinitionCreationFlag.__members__),
    )
    progress("precision", f"TensorRT {version}: {flags.note}")
    gpu = cuda_device_info()
    compiled = compile_plan(trt, request, flags, progress)
    sidecar = make_engine_sidecar(
        manifest=request.manifest,
        onnx_path=request.onnx_path,
        onnx_sha256=sha256_file(request.onnx_path),
        profile=request.profile,
        profiles=request.profiles,
        precision=precision,
        trt_version=version,
        gpu=gpu,
        build_seconds=compiled.seconds,
        builder=settings.record(flags),
    )
    layer_info = inspect_plan_layers(trt, compiled.logger, compiled.plan) if inspector_json else None
    engine = request.engine_path
    layer_file = write_engine_files(engine, compiled.plan, sidecar, layer_info=layer_info, force=force)
    progress("write", f"{engine} + {sidecar_path(engine).name}")
    return BuildReport(
        engine_path=engine,
        sidecar_path=sidecar_path(engine),
        layers_path=layer_file,
        precision=precision,
        profile=request.profile,
        trt_version=version,
        gpu=gpu,
        build_seconds=compiled.seconds,
        size_bytes=len(compiled.plan),
        timing_cache=settings.timing_cache,
        warnings=[*request.notes, *warnings],
        profiles=request.profiles,
    )


__all__ = ["BuildReport", "BuildRequest", "CompiledPlan", "build_engine", "compile_plan", "prepare_build"]
