"""Build a TensorRT engine from a validated acmix-deploy ONNX (TensorRT 10 and 11).

Pipeline (each stage reported through ``progress``):
1. read the ONNX's manifest and input shape, compute one optimisation profile for the batch axis
   within the manifest's promise, and run the CPU readiness check
   (:mod:`exporters.tensorrt_support`) so unsupported graphs fail before any GPU work;
2. ``OnnxParser.parse_from_file`` (works with external weights), every parser error reported
   with its node;
3. precision from :func:`precision_plan`: TensorRT 10 may lower an fp32 ONNX with the FP16 flag;
   TensorRT 11 is always strongly typed (no FP16/INT8 flags), so FP16 and INT8 must already be in
   the ONNX (a mixed-precision export, Q/DQ nodes). Flags are feature-detected, never assumed;
4. ``build_serialized_network`` with a timing cache (read and written back) and a progress monitor;
5. the plan written as is (no prefix bytes: any TensorRT tool can load it), its metadata in the
   JSON sidecar ``<engine>.json`` and, on request, engine-inspector layer info in
   ``<engine>.layers.json``. All writes are atomic; nothing is replaced without ``force``.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.fileio import atomic_write_bytes, atomic_write_text, check_writable, sha256_file
from acmix_deploy.manifest import Manifest, ManifestError, find_manifest, sidecar_path
from acmix_deploy.runtimes.tensorrt import (
    ENGINE_SIDECAR_FORMAT,
    ENGINE_SIDECAR_VERSION,
    cuda_device_info,
    import_tensorrt,
    trt_major,
)

from .tensorrt_support import check_tensorrt_readiness, has_blockers

PRECISIONS = ("fp32", "fp16", "int8")
FP16_ONNX_PRECISIONS = ("fp16", "mixed")
Progress = Callable[[str, str], None]


class BuildError(AcmixDeployError):
    """The engine could not be built (bad arguments, unsupported graph, parser or builder failure)."""


def _noop(stage: str, message: str) -> None:
    pass


# -- pure helpers (tested on CPU) ----------------------------------------------------------------
@dataclass(frozen=True)
class ProfileShapes:
    """One optimisation profile: the min/opt/max input shapes for the single image input."""

    input_name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def fixed(self) -> bool:
        return self.min == self.max

    def to_dict(self) -> dict:
        return {"input": self.input_name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def compute_profile(
    input_name: str,
    input_shape: Sequence[int | str | None],
    manifest_batch: dict,
    *,
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
) -> ProfileShapes:
    """The batch profile for an (N, C, H, W) input, validated against the manifest's batch promise.

    A fixed-batch ONNX gets a fixed profile (asking for another batch is an error). A dynamic
    one gets ``min_batch <= opt <= max`` inside the manifest's ``[min, max]``; ``max`` defaults
    to the manifest's max and ``opt`` to ``max``, because TensorRT tunes its kernels for ``opt`` and
    the largest batches are where throughput is won (pass ``opt_batch=1`` for latency serving).

    Raises:
        BuildError: non-static non-batch dims, or batch sizes outside the limits or out of order.
    """
    shape = list(input_shape)
    if len(shape) < 2:
        raise BuildError(f"input {input_name!r} has rank {len(shape)}; expected an image batch (N, C, H, W)")
    rest = shape[1:]
    if any(not isinstance(d, int) or d <= 0 for d in rest):
        raise BuildError(f"input {input_name!r} shape {shape}: only the batch axis may be dynamic")
    rest_t = tuple(int(d) for d in rest)
    batch_dim = shape[0]
    if isinstance(batch_dim, int) and batch_dim > 0:
        for label, value in (("min", min_batch if min_batch != 1 else None), ("opt", opt_batch), ("max", max_batch)):
            if value is not None and value != batch_dim:
                raise BuildError(f"this ONNX has a fixed batch of {batch_dim}; --{label}-batch {value} differs")
        fixed = (batch_dim, *rest_t)
        return ProfileShapes(input_name, fixed, fixed, fixed)
    lo_limit = int(manifest_batch.get("min", 1))
    hi_limit = int(manifest_batch.get("max", 0)) or None
    hi = max_batch if max_batch is not None else hi_limit
    if hi is None:
        raise BuildError("the manifest gives no maximum batch; pass max_batch")
    opt = opt_batch if opt_batch is not None else hi
    lo = min_batch
    if lo < 1:
        raise BuildError(f"min batch must be >= 1, got {lo}")
    if not lo <= opt <= hi:
        raise BuildError(f"batch sizes must satisfy min <= opt <= max, got {lo} <= {opt} <= {hi}")
    if lo < lo_limit or (hi_limit is not None and hi > hi_limit):
        raise BuildError(
            f"batch range {lo}..{hi} is outside what the ONNX was validated for ({lo_limit}..{hi_limit}); "
            "re-export with a larger --max-batch"
        )
    return ProfileShapes(input_name, (lo, *rest_t), (opt, *rest_t), (hi, *rest_t))


@dataclass(frozen=True)
class PrecisionPlan:
    """How to ask TensorRT for a precision: network-creation flags and builder flags, by name."""

    network_flags: tuple[str, ...] = ()
    builder_flags: tuple[str, ...] = ()
    clear_flags: tuple[str, ...] = ()
    strongly_typed: bool = False
    note: str = ""


def precision_plan(
    precision: str,
    *,
    trt_version: str,
    onnx_precision: str,
    builder_flags: set[str],
    network_flags: set[str],
) -> PrecisionPlan:
    """Decide the flags for ``precision`` given what this TensorRT offers and what the ONNX holds.

    Args:
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        trt_version: ``tensorrt.__version__``.
        onnx_precision: the manifest's ``precision`` (``fp32``, ``fp16``/``mixed``, ``int8``).
        builder_flags: names present in ``trt.BuilderFlag`` (feature detection; TensorRT 11 lacks
            ``FP16``/``INT8``).
        network_flags: names present in ``trt.NetworkDefinitionCreationFlag``.

    Raises:
        BuildError: the combination cannot give the requested precision.
    """
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    major = trt_major(trt_version)
    typed_onnx = onnx_precision in (*FP16_ONNX_PRECISIONS, "int8")
    # TF32 rounds fp32 matmuls/convs to a 10-bit mantissa; an fp32 engine should match ORT fp32.
    no_tf32 = ("TF32",) if "TF32" in builder_flags else ()
    strong = ("STRONGLY_TYPED",) if "STRONGLY_TYPED" in network_flags else ()

    if precision == "fp32":
        if typed_onnx:
            raise BuildError(
                f"this ONNX carries {onnx_precision} types; an fp32 engine needs an fp32 ONNX (or build with "
                f"--{'int8' if onnx_precision == 'int8' else 'fp16'})"
            )
        return PrecisionPlan(clear_flags=no_tf32, strongly_typed=major >= 11, note="fp32")

    if precision == "fp16":
        if onnx_precision in FP16_ONNX_PRECISIONS:
            # Precision is already in the graph: keep it exactly (strong typing), never re-decide it.
            if major >= 11:
                return PrecisionPlan(strongly_typed=True, note="fp16 from the mixed-precision ONNX")
            if strong:
                return PrecisionPlan(network_flags=strong, strongly_typed=True, note="fp16 ONNX, strongly typed")
            if "FP16" in builder_flags:
                return PrecisionPlan(builder_flags=("FP16",), note="fp16 ONNX, weakly typed")
            raise BuildError(f"TensorRT {trt_version} offers neither STRONGLY_TYPED nor the FP16 flag")
        if onnx_precision == "int8":
            raise BuildError("this ONNX is INT8 (Q/DQ); build it with --int8")
        if major >= 11 or "FP16" not in builder_flags:
            raise BuildError(
                f"TensorRT {trt_version} has no FP16 builder flag (networks are always strongly typed): "
                "FP16 must come from the ONNX. Export a mixed-precision ONNX (manifest precision 'fp16', "
                "LayerNorm/Softmax/reductions and I/O kept in fp32) and build that"
            )
        return PrecisionPlan(builder_flags=("FP16",), clear_flags=no_tf32, note="fp16 flag on an fp32 ONNX")

    # int8: explicit quantisation only, never a calibrator (deprecated in 10.1, removed in 11).
    if onnx_precision != "int8":
        raise BuildError(
            "INT8 needs a Q/DQ-quantised ONNX (manifest precision 'int8'); calibration is not supported. "
            f"This ONNX is {onnx_precision}"
        )
    # Strongly typed wherever it exists: the layers the sensitivity pass kept in float then stay
    # exactly as measured (weak typing with the FP16 flag would let TensorRT re-decide them), and
    # the engine matches what TensorRT 11 builds. Weak typing is deprecated from 10.12 on and only
    # used on releases without STRONGLY_TYPED.
    if major >= 11:
        return PrecisionPlan(strongly_typed=True, note="int8 from Q/DQ nodes")
    if strong:
        return PrecisionPlan(network_flags=strong, strongly_typed=True, note="int8 Q/DQ, strongly typed")
    flags = tuple(f for f in ("INT8", "FP16") if f in builder_flags)  # FP16 lets non-quantised layers use it
    if "INT8" not in flags:
        raise BuildError(f"TensorRT {trt_version} offers neither the INT8 flag nor STRONGLY_TYPED")
    return PrecisionPlan(builder_flags=flags, note="int8 Q/DQ, weakly typed")


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


def make_engine_sidecar(
    *,
    manifest: Manifest,
    onnx_path: Path,
    onnx_sha256: str,
    profile: ProfileShapes,
    precision: str,
    trt_version: str,
    gpu: dict,
    build_seconds: float,
    builder: dict,
) -> dict:
    """The ``<engine>.json`` content: everything a runner needs besides the plan itself."""
    return {
        "format": ENGINE_SIDECAR_FORMAT,
        "format_version": ENGINE_SIDECAR_VERSION,
        "precision": precision,
        "profile": profile.to_dict(),
        "tensorrt": {"version": str(trt_version)},
        "gpu": {"name": gpu.get("name"), "compute_capability": gpu.get("compute_capability")},
        "cuda": {"version": gpu.get("cuda")},
        "onnx": {"file": onnx_path.name, "sha256": onnx_sha256},
        "manifest": manifest.to_dict(),
        "builder": builder,
        "build_seconds": round(build_seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def layers_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.layers.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".layers.json")


def read_onnx_manifest(onnx_path: str | Path) -> tuple[Manifest, str, list[int | str | None], onnx.ModelProto]:
    """The manifest (metadata, else sidecar), input name and input shape of an ONNX file.

    Weights in external files are not read: only the graph is needed here.

    Raises:
        BuildError: unreadable ONNX, no manifest, or not a single-input model.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BuildError(f"{onnx_path}: no such file")
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted types for bad files
        raise BuildError(f"{onnx_path}: not a readable ONNX file ({exc})") from None
    try:
        manifest = find_manifest({p.key: p.value for p in proto.metadata_props}, onnx_path)
    except ManifestError as exc:
        raise BuildError(f"{onnx_path}: {exc}; export it with `acmix-deploy export`") from None
    if manifest is None:
        raise BuildError(
            f"{onnx_path}: no acmix-deploy manifest (expected metadata or {sidecar_path(onnx_path).name}); "
            "export it with `acmix-deploy export`"
        )
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise BuildError(f"{onnx_path}: expected one image input, found {len(inputs)}")
    dims: list[int | str | None] = []
    for d in inputs[0].type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None))
    return manifest, inputs[0].name, dims, proto


# -- the build -----------------------------------------------------------------------------------
@dataclass
class BuildReport:
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

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            engine_path=str(self.engine_path),
            sidecar_path=str(self.sidecar_path),
            layers_path=str(self.layers_path) if self.layers_path else None,
            timing_cache=str(self.timing_cache) if self.timing_cache else None,
            profile=self.profile.to_dict(),
        )
        return data


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: str = "fp32",
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    workspace_gb: float = 4.0,
    timing_cache: str | Path | None = None,
    builder_optimization_level: int | None = None,
    inspector_json: bool = False,
    force: bool = False,
    progress: Progress = _noop,
) -> BuildReport:
    """Build ``engine_path`` from an acmix-deploy ONNX, with its sidecar ``<engine>.json``.

    Args:
        onnx_path: an ONNX written by ``exporters.onnx.export_onnx`` (it needs the manifest).
        engine_path: destination plan (``.engine``/``.plan``).
        precision: ``fp32``, ``fp16`` or ``int8`` (see :func:`precision_plan`).
        min_batch, opt_batch, max_batch: the batch profile (see :func:`compute_profile`).
        workspace_gb: builder workspace memory pool limit.
        timing_cache: a timing-cache file to read (if present) and write back (it is a cache:
            updated in place whatever ``force`` says).
        builder_optimization_level: 0..5 (TensorRT's default is 3); ``None`` keeps the default.
        inspector_json: also write engine-inspector layer info (``<engine>.layers.json``); builds
            with ``ProfilingVerbosity.DETAILED``.
        force: replace existing engine/sidecar/layer files.
        progress: ``callback(stage, message)``; ``print`` works.

    Raises:
        BuildError, MissingDependencyError, OutputExistsError.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in PRECISIONS:
        raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if workspace_gb <= 0:
        raise BuildError(f"workspace must be > 0 GB, got {workspace_gb}")
    if builder_optimization_level is not None and not 0 <= builder_optimization_level <= 5:
        raise BuildError(f"builder optimisation level must be 0..5, got {builder_optimization_level}")
    outputs = [engine_path, sidecar_path(engine_path)] + ([layers_path(engine_path)] if inspector_json else [])
    for out in outputs:
        check_writable(out, force=force)

    manifest, input_name, input_shape, proto = read_onnx_manifest(onnx_path)
    profile = compute_profile(
        input_name, input_shape, manifest.batch, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch
    )
    progress("profile", f"{input_name}: min {profile.min}, opt {profile.opt}, max {profile.max}")

    trt = import_tensorrt()
    version = str(trt.__version__)
    major = trt_major(version)
    findings = check_tensorrt_readiness(proto, trt_major=major) if major in (10, 11) else []
    if has_blockers(findings):
        lines = "\n".join(f"  {f}" for f in findings if f.severity == "blocker")
        raise BuildError(f"{onnx_path.name} is not ready for TensorRT {major}:\n{lines}")
    warnings = [str(f) for f in findings if f.severity == "warning"]
    for w in warnings:
        progress("check", w)
    del proto

    plan_flags = precision_plan(
        precision,
        trt_version=version,
        onnx_precision=manifest.precision,
        builder_flags=set(trt.BuilderFlag.__members__),
        network_flags=set(trt.NetworkDefinitionCreationFlag.__members__),
    )
    progress("precision", f"TensorRT {version}: {plan_flags.note}")

    gpu = cuda_device_info()
    logger = _make_logger(trt)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # noqa: BLE001 - "CUDA initialization failure" surfaces as a TypeError
        raise BuildError(f"TensorRT could not create a builder (is a CUDA GPU visible?): {exc}") from None

    flags = 0
    for name in plan_flags.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    t0 = time.perf_counter()
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise BuildError(f"TensorRT's ONNX parser rejected {onnx_path.name}:\n{format_parser_errors(errors)}")
    progress("parse", f"{network.num_layers} layers, {network.num_inputs} input(s)")
    if network.num_inputs != 1 or network.get_input(0).name != input_name:
        raise BuildError(f"the parsed network's inputs do not match the ONNX input {input_name!r}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    for name in plan_flags.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan_flags.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    if builder_optimization_level is not None:
        config.builder_optimization_level = builder_optimization_level
    if inspector_json:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)

    cache = None
    if timing_cache is not None:
        timing_cache = Path(timing_cache)
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, False):
            raise BuildError(f"{timing_cache}: TensorRT rejected the timing cache (another TensorRT version?)")
        progress("timing-cache", f"{timing_cache} ({len(blob)} bytes read)")

    monitor = _make_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    progress("build", f"building {precision} engine (this takes a while)")
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        detail = "\n".join(f"  {m}" for m in logger.errors[-10:]) or (
            "  (no error message reached this builder's logger: TensorRT keeps the first logger while any "
            "builder or runtime lives in this process)"
        )
        raise BuildError(f"TensorRT failed to build the engine:\n{detail}")
    plan = bytes(memoryview(serialized))
    progress("build", f"done in {seconds:.1f} s ({len(plan) / 1e6:.1f} MB)")

    if cache is not None:
        atomic_write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())), force=True)

    layer_file = None
    written: list[Path] = []
    try:
        if inspector_json:
            runtime = trt.Runtime(logger)
            engine = runtime.deserialize_cuda_engine(plan)
            info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
            layer_file = atomic_write_text(layers_path(engine_path), _pretty_json(info), force=force)
            written.append(layer_file)
        sidecar = make_engine_sidecar(
            manifest=manifest,
            onnx_path=onnx_path,
            onnx_sha256=sha256_file(onnx_path),
            profile=profile,
            precision=precision,
            trt_version=version,
            gpu=gpu,
            build_seconds=seconds,
            builder={
                "workspace_gb": workspace_gb,
                "optimization_level": builder_optimization_level,
                "flags": list(plan_flags.builder_flags),
                "network_flags": list(plan_flags.network_flags),
                "strongly_typed": plan_flags.strongly_typed,
                "timing_cache": str(timing_cache) if timing_cache else None,
            },
        )
        # The sidecar goes first so an engine never exists without its metadata.
        written.append(atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2) + "\n", force=force))
        atomic_write_bytes(engine_path, plan, force=force)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    progress("write", f"{engine_path} + {sidecar_path(engine_path).name}")
    return BuildReport(
        engine_path=engine_path,
        sidecar_path=sidecar_path(engine_path),
        layers_path=layer_file,
        precision=precision,
        profile=profile,
        trt_version=version,
        gpu=gpu,
        build_seconds=seconds,
        size_bytes=len(plan),
        timing_cache=timing_cache,
        warnings=warnings,
    )


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2) + "\n"
    except json.JSONDecodeError:  # keep whatever the inspector gave
        return text


def _make_logger(trt):
    """A TensorRT logger that prints warnings and keeps errors for the BuildError message."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self._lock = threading.Lock()

        def log(self, severity, msg) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                with self._lock:
                    self.errors.append(str(msg))
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {severity.name}: {msg}", flush=True)

    return _Logger()


def _make_progress_monitor(trt, progress: Progress):
    """An ``IProgressMonitor`` that reports top-level phases, or ``None`` where the API lacks it."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        # TensorRT calls these from its own threads: keep them cheap and thread-safe.
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                with self._lock:
                    progress("build", f"{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            pass

    return _Monitor()


__all__ = [
    "PRECISIONS",
    "BuildError",
    "BuildReport",
    "PrecisionPlan",
    "ProfileShapes",
    "build_engine",
    "compute_profile",
    "format_parser_errors",
    "layers_path",
    "make_engine_sidecar",
    "precision_plan",
    "read_onnx_manifest",
]
