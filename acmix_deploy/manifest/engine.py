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

from .schema import BatchSpec, Manifest, ManifestError

ENGINE_SIDECAR_FORMAT = "acmix-deploy.tensorrt-engine"
ENGINE_SIDECAR_VERSION = 1


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
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            lo, hi = int(self.profile["min"][0]), int(self.profile["max"][0])
            opt = int(self.profile["opt"][0]) if "opt" in self.profile else None
        except (KeyError, TypeError, IndexError, ValueError):
            raise ManifestError("engine sidecar profile needs min/opt/max input shapes") from None
        object.__setattr__(self, "_batch", BatchSpec(dynamic=lo != hi, min=lo, max=hi, opt=opt))

    @property
    def batch(self) -> BatchSpec:
        """The batch range the engine's optimisation profile holds."""
        return self._batch  # type: ignore[attr-defined]

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
        return {**data, **self.extra}

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
        known = {"format", "format_version", "precision", "profile", "tensorrt", "gpu", "cuda", "onnx", "manifest"}
        known |= {"builder", "build_seconds", "created"}
        return cls(**built, extra={k: v for k, v in data.items() if k not in known})


__all__ = ["ENGINE_SIDECAR_FORMAT", "ENGINE_SIDECAR_VERSION", "EngineSidecar"]
