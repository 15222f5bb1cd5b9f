"""The typed ``<engine>.json`` sidecar of a TensorRT engine: how it was built, and what it serves.

The engine file stays a plain TensorRT plan (trtexec and Triton load it as is); everything else
lives here. The embedded ``manifest`` describes the ONNX the engine was built from; the engine
may have been built in another precision and for a narrower batch range, so :meth:`served_manifest`
is the manifest of the engine itself: batch limits from its optimisation profile, precision from
the build. Plain data only: nothing here imports TensorRT.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from ..text import is_printable
from .schema import MAX_TEXT_CHARS, BatchSpec, Manifest, ManifestError

ENGINE_SIDECAR_FORMAT = "acmix-deploy.tensorrt-engine"
ENGINE_SIDECAR_VERSION = 1


@dataclass(frozen=True)
class EngineProfile:
    """One optimisation profile of an engine: its image input's min/opt/max shapes, ``[batch, 3, size, size]``.

    ``opt`` and ``input`` may be missing from what an older writer recorded (``opt`` then is ``max``'s
    batch); keys of a newer writer are kept in ``extra`` and written back, so reading is lossless.
    """

    min: tuple[int, ...]
    max: tuple[int, ...]
    opt: tuple[int, ...] | None = None
    input: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        lo, hi = self.min[0], self.max[0]
        batch = BatchSpec(dynamic=lo != hi, min=lo, max=hi, opt=None if self.opt is None else self.opt[0])
        object.__setattr__(self, "_batch", batch)  # checked here: 1 <= min <= opt <= max

    @property
    def batch(self) -> BatchSpec:
        """The batch range the profile holds."""
        return self._batch  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        data: dict[str, Any] = {} if self.input is None else {"input": self.input}
        data["min"] = list(self.min)
        if self.opt is not None:
            data["opt"] = list(self.opt)
        return {**data, "max": list(self.max), **self.extra}

    @classmethod
    def from_dict(cls, data: object, img_size: int) -> EngineProfile:
        """Raises ManifestError unless ``data`` holds min/(opt)/max shapes ``[batch, 3, img_size, img_size]``."""
        data = data if isinstance(data, dict) else {}
        shapes = {key: cls._shape(data, key, img_size) for key in ("min", "opt", "max") if key in data or key != "opt"}
        name = data.get("input")
        if name is not None and (not isinstance(name, str) or not is_printable(name) or len(name) > MAX_TEXT_CHARS):
            raise ManifestError(f"engine sidecar profile input must be printable text, got {name!r:.60}")
        extra = {k: v for k, v in data.items() if k not in ("input", "min", "opt", "max")}
        return cls(shapes["min"], shapes["max"], shapes.get("opt"), name, extra)

    @staticmethod
    def _shape(data: dict, key: str, size: int) -> tuple[int, ...]:
        shape = data.get(key)
        if not isinstance(shape, list | tuple) or len(shape) != 4 or not all(type(d) is int for d in shape):
            raise ManifestError(
                f"engine sidecar profile needs min/opt/max input shapes of 4 integers, {key} is {shape!r:.60}"
            )
        if list(shape[1:]) != [3, size, size]:
            raise ManifestError(f"engine sidecar profile {key} shape {list(shape)} is not [batch, 3, {size}, {size}]")
        return tuple(shape)


@dataclass(frozen=True)
class EngineSidecar:
    """What an engine was built from, with what, and for which GPU."""

    manifest: Manifest
    precision: str
    profile: dict  # input shapes {"min": [...], "opt": [...], "max": [...]}
    tensorrt_version: str
    gpu_name: str | None
    compute_capability: str | None
    cuda_version: str | None = None
    onnx_file: str = ""
    onnx_sha256: str = ""
    builder: dict = field(default_factory=dict)
    build_seconds: float = 0.0
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    format_version: int = ENGINE_SIDECAR_VERSION
    profiles: tuple[EngineProfile, ...] = ()  # every optimisation profile in engine order; () in older sidecars
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        served = EngineProfile.from_dict(self.profile, self.manifest.img_size)  # checked, as every listed one is
        object.__setattr__(self, "_batch", served.batch)
        object.__setattr__(self, "_served", served)
        if not all(isinstance(p, EngineProfile) for p in self.profiles):
            raise ManifestError("engine sidecar profiles must be EngineProfile entries")
        lo, hi = served.batch.min, served.batch.max
        if self.profiles and not all(
            any(p.batch.min <= b <= p.batch.max for p in self.profiles) for b in range(lo, hi + 1)
        ):
            # the served range is the union of profiles that touch (TensorRT picks one per batch): each batch in one
            raise ManifestError(
                f"engine sidecar profile serves batches {lo}..{hi}, which its listed profiles do not cover"
            )
        for name in ("precision", "tensorrt_version", "gpu_name", "compute_capability", "cuda_version", "onnx_file"):
            value = getattr(self, name)
            if value is not None and (not is_printable(value) or len(value) > MAX_TEXT_CHARS):
                raise ManifestError(f"engine sidecar {name} must be printable text, got {value!r:.60}")
        if not isinstance(self.build_seconds, float | int) or not 0 <= self.build_seconds < float("inf"):
            raise ManifestError(
                f"engine sidecar build_seconds must be a non-negative number, got {self.build_seconds!r}"
            )

    @property
    def batch(self) -> BatchSpec:
        """The batch range the engine's optimisation profile holds."""
        return self._batch  # type: ignore[attr-defined]

    @property
    def engine_profiles(self) -> tuple[EngineProfile, ...]:
        """Every optimisation profile, in engine order: those listed, else (older sidecars) ``profile`` alone."""
        return self.profiles or (self._served,)  # type: ignore[attr-defined]

    def served_manifest(self) -> Manifest:
        """The manifest of the engine: the ONNX's, with the engine's batch limits and precision."""
        return self.manifest.replace(batch=self.batch, precision=self.precision)

    def to_dict(self) -> dict:
        data = {
            "format": ENGINE_SIDECAR_FORMAT,
            "format_version": self.format_version,
            "precision": self.precision,
            "profile": self.profile,
            "tensorrt": {"version": self.tensorrt_version},
            "gpu": {"name": self.gpu_name, "compute_capability": self.compute_capability},
            "cuda": {"version": self.cuda_version},
            "onnx": {"file": self.onnx_file, "sha256": self.onnx_sha256},
            "manifest": self.manifest.to_dict(),
            "builder": self.builder,
            "build_seconds": self.build_seconds,
            "created": self.created,
        }
        listed = {"profiles": [p.to_dict() for p in self.profiles]} if self.profiles else {}
        return {**data, **listed, **self.extra}

    @classmethod
    def from_dict(cls, data: object) -> EngineSidecar:
        """Raises ManifestError when ``data`` is not an acmix-deploy engine sidecar of a known version."""
        if not isinstance(data, dict) or data.get("format") != ENGINE_SIDECAR_FORMAT:
            raise ManifestError("not an acmix-deploy TensorRT engine sidecar (missing 'format')")
        if data.get("format_version") != ENGINE_SIDECAR_VERSION:
            raise ManifestError(
                f"engine sidecar format_version {data.get('format_version')!r} is not supported "
                f"(expected {ENGINE_SIDECAR_VERSION})"
            )
        try:
            built: dict[str, Any] = {
                "manifest": Manifest.from_dict(data["manifest"]),
                "precision": str(data["precision"]),
                "profile": dict(data["profile"]),
                "tensorrt_version": str(data["tensorrt"]["version"]),
                "gpu_name": data["gpu"]["name"],
                "compute_capability": data["gpu"]["compute_capability"],
            }
            cuda, onnx = data.get("cuda") or {}, data.get("onnx") or {}
            built.update(
                cuda_version=cuda.get("version"),
                onnx_file=str(onnx.get("file", "")),
                onnx_sha256=str(onnx.get("sha256", "")),
                builder=dict(data.get("builder") or {}),
                build_seconds=float(data.get("build_seconds", 0.0)),
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"engine sidecar lacks the manifest, profile, TensorRT or GPU ({exc})") from None
        if "profiles" in data:
            listed = data["profiles"]
            if not isinstance(listed, list) or not listed:
                raise ManifestError(f"engine sidecar profiles must be a non-empty list, got {listed!r:.60}")
            built["profiles"] = tuple(EngineProfile.from_dict(p, built["manifest"].img_size) for p in listed)
        known = {"format", "format_version", "precision", "profile", "tensorrt", "gpu", "cuda", "onnx", "manifest"}
        known |= {"builder", "build_seconds", "created", "profiles"}
        return cls(**built, extra={k: v for k, v in data.items() if k not in known})


__all__ = ["ENGINE_SIDECAR_FORMAT", "ENGINE_SIDECAR_VERSION", "EngineProfile", "EngineSidecar"]
