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
        shapes = {key: self._profile_shape(key) for key in ("min", "opt", "max") if key in self.profile or key != "opt"}
        lo, hi = shapes["min"][0], shapes["max"][0]
        opt = shapes["opt"][0] if "opt" in shapes else None
        object.__setattr__(self, "_batch", BatchSpec(dynamic=lo != hi, min=lo, max=hi, opt=opt))
        for name in ("precision", "tensorrt_version", "gpu_name", "compute_capability", "cuda_version", "onnx_file"):
            value = getattr(self, name)
            if value is not None and (not is_printable(value) or len(value) > MAX_TEXT_CHARS):
                raise ManifestError(f"engine sidecar {name} must be printable text, got {value!r:.60}")
        if not isinstance(self.build_seconds, float | int) or not 0 <= self.build_seconds < float("inf"):
            raise ManifestError(
                f"engine sidecar build_seconds must be a non-negative number, got {self.build_seconds!r}"
            )

    def _profile_shape(self, key: str) -> tuple[int, int, int, int]:
        """One optimisation-profile input shape: [batch, 3, img_size, img_size] of the embedded manifest."""
        shape = self.profile.get(key) if isinstance(self.profile, dict) else None
        if not isinstance(shape, list | tuple) or len(shape) != 4 or not all(type(d) is int for d in shape):
            raise ManifestError(
                f"engine sidecar profile needs min/opt/max input shapes of 4 integers, {key} is {shape!r:.60}"
            )
        size = self.manifest.img_size
        if list(shape[1:]) != [3, size, size]:
            raise ManifestError(f"engine sidecar profile {key} shape {list(shape)} is not [batch, 3, {size}, {size}]")
        return tuple(shape)  # type: ignore[return-value]

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
