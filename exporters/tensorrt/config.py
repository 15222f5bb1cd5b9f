"""The builder config stage: workspace, precision flags, optimisation level, profile and timing cache.

:class:`BuilderSettings` is the plain-data half (validated before TensorRT is imported, recorded
in the engine sidecar); :func:`create_builder_config` applies it, a :class:`~.precision_flags.PrecisionPlan`
and the :class:`~.profile.ProfileShapes` to a fresh ``IBuilderConfig``. The timing cache is a
cache: read if present, written back after every successful build whatever ``force`` says, so
later builds with the same TensorRT and GPU skip most kernel timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acmix_deploy.fileio import atomic_write_bytes
from acmix_deploy.runtimes.base import RunnerError
from acmix_deploy.runtimes.tensorrt_compat import HARDWARE_LEVEL_MEMBERS, Portability

from .base import BuildError, Progress, no_progress
from .precision_flags import PrecisionPlan
from .profile import ProfileShapes

GIB = 1 << 30


@dataclass(frozen=True)
class BuilderSettings:
    """What the builder is asked for besides precision and profile.

    Attributes:
        workspace_gb: the workspace memory pool limit, GiB (> 0).
        optimization_level: 0..5 (TensorRT's default is 3); ``None`` keeps the default.
        detailed_profiling: build with ``ProfilingVerbosity.DETAILED`` so the engine inspector
            can report every layer (needed for ``<engine>.layers.json``).
        timing_cache: a timing-cache file to read (if present) and write back; ``None``: none.
        version_compatible: build with ``VERSION_COMPATIBLE`` (runs on later TensorRT releases, by
            the rules in :mod:`acmix_deploy.runtimes.tensorrt_compat`; may be slower).
        exclude_lean_runtime: with ``version_compatible``, leave the lean runtime out of the plan
            (smaller; a later TensorRT then needs the build release's lean runtime library).
        hardware_compatibility: ``none``, ``ampere-plus`` or ``same-compute-capability``.

    Raises:
        BuildError: workspace or optimisation level out of range, or an impossible portability.
    """

    workspace_gb: float = 4.0
    optimization_level: int | None = None
    detailed_profiling: bool = False
    timing_cache: Path | None = None
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: str = "none"

    def __post_init__(self) -> None:
        try:
            self.portability  # noqa: B018 - validates the three portability fields together
        except RunnerError as exc:
            raise BuildError(str(exc)) from None
        if not self.workspace_gb > 0:
            raise BuildError(f"workspace must be > 0 GB, got {self.workspace_gb}")
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise BuildError(f"builder optimisation level must be 0..5, got {self.optimization_level}")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gb * GIB)

    @property
    def portability(self) -> Portability:
        return Portability(self.version_compatible, self.exclude_lean_runtime, self.hardware_compatibility)

    def record(self, plan: PrecisionPlan) -> dict:
        """The sidecar's ``builder`` entry: these settings and the flags ``plan`` set."""
        return {
            "workspace_gb": self.workspace_gb,
            "optimization_level": self.optimization_level,
            "flags": list(plan.builder_flags),
            "network_flags": list(plan.network_flags),
            "strongly_typed": plan.strongly_typed,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            **self.portability.record(),
        }


def create_builder_config(
    trt: Any,
    builder: Any,
    plan: PrecisionPlan,
    profiles: ProfileShapes | Sequence[ProfileShapes],
    settings: BuilderSettings,
) -> Any:
    """A new ``IBuilderConfig`` with the workspace, flags, level and the optimisation profiles.

    Args:
        trt: the ``tensorrt`` module.
        builder: the ``trt.Builder`` the network was created with.
        plan: the flags to set and clear (names in ``trt.BuilderFlag``).
        profiles: the min/opt/max shapes of the image input, one entry per optimisation profile
            (added in this order: profile ``i`` of the engine is ``profiles[i]``).
        settings: workspace, optimisation level, profiling verbosity.
    """
    config = builder.create_builder_config()
    if config is None:
        raise BuildError("TensorRT could not create a builder config")
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    if settings.optimization_level is not None:
        config.builder_optimization_level = settings.optimization_level
    if settings.detailed_profiling:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    apply_portability(trt, config, settings.portability)
    for shapes in [profiles] if isinstance(profiles, ProfileShapes) else profiles:
        opt_profile = builder.create_optimization_profile()
        if opt_profile is None:
            raise BuildError("TensorRT could not create an optimisation profile")
        opt_profile.set_shape(shapes.input_name, shapes.min, shapes.opt, shapes.max)
        if config.add_optimization_profile(opt_profile) < 0:
            raise BuildError(f"TensorRT refused the optimisation profile {shapes.batches}")
    return config


def apply_portability(trt: Any, config: Any, portability: Portability) -> None:
    """Set the version-compatibility flags and the hardware-compatibility level, feature-detected.

    Raises:
        BuildError: this TensorRT lacks a flag or level asked for (``SAME_COMPUTE_CAPABILITY`` is
            not in TensorRT 10.0, for one).
    """
    flags = [("VERSION_COMPATIBLE", portability.version_compatible)]
    flags.append(("EXCLUDE_LEAN_RUNTIME", portability.exclude_lean_runtime))
    for name, wanted in flags:
        if wanted:
            if name not in trt.BuilderFlag.__members__:
                raise BuildError(f"TensorRT {trt.__version__} has no {name} builder flag")
            config.set_flag(trt.BuilderFlag.__members__[name])
    if portability.hardware != "none":
        member = HARDWARE_LEVEL_MEMBERS[portability.hardware]
        if member not in trt.HardwareCompatibilityLevel.__members__:
            raise BuildError(f"TensorRT {trt.__version__} has no {portability.hardware} hardware compatibility")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.__members__[member]


def read_timing_cache(path: Path) -> bytes:
    """The cache file's bytes; ``b""`` (an empty cache) when it does not exist yet.

    Raises:
        BuildError: the path is a directory or cannot be read.
    """
    if path.is_dir():
        raise BuildError(f"{path}: the timing cache must be a file, not a directory")
    if not path.exists():
        return b""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BuildError(f"{path}: cannot read the timing cache ({exc.strerror or exc})") from None


def attach_timing_cache(config: Any, blob: bytes, path: Path, progress: Progress = no_progress) -> Any:
    """Attach a timing cache holding ``blob`` (read from ``path`` by :func:`read_timing_cache`) to ``config``.

    Returns:
        The ``ITimingCache``; the builder adds to it, :func:`save_timing_cache` writes it back.

    Raises:
        BuildError: TensorRT rejects the cache (another TensorRT version wrote it).
    """
    cache = config.create_timing_cache(blob)
    if cache is None:  # TensorRT could not read the blob: a damaged file (another version's is rejected below)
        raise BuildError(f"{path}: TensorRT cannot read this timing cache (damaged?); delete it to start a new one")
    if not config.set_timing_cache(cache, False):
        raise BuildError(f"{path}: TensorRT rejected the timing cache (another TensorRT version?)")
    progress("timing-cache", f"{path} ({len(blob)} bytes read)")
    return cache


def save_timing_cache(config: Any, path: Path) -> Path:
    """Write the config's (now updated) timing cache back to ``path``, atomically."""
    cache = config.get_timing_cache()
    if cache is None:
        raise BuildError(f"{path}: TensorRT returned no timing cache to write back")
    return atomic_write_bytes(path, bytes(memoryview(cache.serialize())), force=True)


__all__ = [
    "BuilderSettings",
    "apply_portability",
    "attach_timing_cache",
    "create_builder_config",
    "read_timing_cache",
    "save_timing_cache",
]
