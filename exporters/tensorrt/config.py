"""The builder config stage: workspace, precision flags, optimisation level, profile and timing cache.

:class:`BuilderSettings` is the plain-data half (validated before TensorRT is imported, recorded
in the engine sidecar); :func:`create_builder_config` applies it, a :class:`~.precision_flags.PrecisionPlan`
and a :class:`~.profile.ProfileShapes` to a fresh ``IBuilderConfig``. The timing cache is a
cache: read if present, written back after every successful build whatever ``force`` says, so
later builds with the same TensorRT and GPU skip most kernel timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acmix_deploy.fileio import atomic_write_bytes

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

    Raises:
        BuildError: workspace or optimisation level out of range.
    """

    workspace_gb: float = 4.0
    optimization_level: int | None = None
    detailed_profiling: bool = False
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if not self.workspace_gb > 0:
            raise BuildError(f"workspace must be > 0 GB, got {self.workspace_gb}")
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise BuildError(f"builder optimisation level must be 0..5, got {self.optimization_level}")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gb * GIB)

    def record(self, plan: PrecisionPlan) -> dict:
        """The sidecar's ``builder`` entry: these settings and the flags ``plan`` set."""
        return {
            "workspace_gb": self.workspace_gb,
            "optimization_level": self.optimization_level,
            "flags": list(plan.builder_flags),
            "network_flags": list(plan.network_flags),
            "strongly_typed": plan.strongly_typed,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
        }


def create_builder_config(
    trt: Any, builder: Any, plan: PrecisionPlan, profile: ProfileShapes, settings: BuilderSettings
) -> Any:
    """A new ``IBuilderConfig`` with the workspace, flags, level and the one optimisation profile.

    Args:
        trt: the ``tensorrt`` module.
        builder: the ``trt.Builder`` the network was created with.
        plan: the flags to set and clear (names in ``trt.BuilderFlag``).
        profile: the min/opt/max shapes of the image input.
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
    opt_profile = builder.create_optimization_profile()
    if opt_profile is None:
        raise BuildError("TensorRT could not create an optimisation profile")
    opt_profile.set_shape(profile.input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    return config


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
    "attach_timing_cache",
    "create_builder_config",
    "read_timing_cache",
    "save_timing_cache",
]
