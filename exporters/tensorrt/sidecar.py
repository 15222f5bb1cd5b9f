"""The write stage: the plan as is, its metadata in ``<engine>.json`` and optional layer info.

The engine file is an unmodified TensorRT plan (no prefix bytes: trtexec, Triton or any TensorRT
tool loads it); everything a runner needs besides it (the model's manifest, the profile, the
TensorRT version and GPU it was built for) goes to the JSON sidecar. Writes are atomic and refuse
to replace anything without ``force``; the sidecar is written before the plan, so an engine never
exists without its metadata, and a failed write removes what this build had written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from acmix_deploy.fileio import atomic_write_bytes, atomic_write_text, check_writable
from acmix_deploy.manifest import EngineProfile, EngineSidecar, Manifest, sidecar_path

from .profile import ProfileShapes


def layers_path(engine: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.layers.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".layers.json")


def engine_outputs(engine_path: Path, *, layers: bool) -> list[Path]:
    """Every file a build writes: the plan, its sidecar and, with ``layers``, the layer info."""
    return [engine_path, sidecar_path(engine_path)] + ([layers_path(engine_path)] if layers else [])


def check_engine_outputs(engine_path: Path, *, layers: bool, force: bool) -> None:
    """Refuse, before any work, outputs that exist (without ``force``) or cannot be written.

    Raises:
        OutputExistsError, AcmixDeployError: see :func:`acmix_deploy.fileio.check_writable`.
    """
    for path in engine_outputs(engine_path, layers=layers):
        check_writable(path, force=force)


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
    profiles: Sequence[ProfileShapes] | None = None,
) -> EngineSidecar:
    """The ``<engine>.json`` content: everything a runner needs besides the plan itself.

    Args:
        manifest: the ONNX's manifest, embedded unchanged (the engine's own precision and batch
            range are in ``precision`` and ``profile``; ``EngineSidecar.served_manifest`` merges them).
        onnx_path, onnx_sha256: the ONNX the engine was built from, by name and content.
        profile: the batches the engine serves as one range (its only optimisation profile, or
            the served union of several: ``profile.served_profile``).
        precision: the engine's precision.
        trt_version: ``tensorrt.__version__`` of the build.
        gpu: ``cuda_device_info()`` of the build (``name``, ``compute_capability``, ``cuda``).
        build_seconds: parse + build wall time.
        builder: what the builder was asked for (``BuilderSettings.record``).
        profiles: every optimisation profile in engine order, recorded as ``profiles`` (the
            runner switches between them); ``None``: ``profile`` is the only one.
    """
    return EngineSidecar(
        manifest=manifest,
        precision=precision,
        profile=profile.to_dict(),
        tensorrt_version=str(trt_version),
        gpu_name=gpu.get("name"),
        compute_capability=gpu.get("compute_capability"),
        cuda_version=gpu.get("cuda"),
        onnx_file=onnx_path.name,
        onnx_sha256=onnx_sha256,
        builder=builder,
        build_seconds=round(build_seconds, 3),
        profiles=tuple(
            EngineProfile(min=p.min, max=p.max, opt=p.opt, input=p.input_name) for p in (profiles or [profile])
        ),
    )


def write_engine_files(
    engine_path: Path, plan: bytes, sidecar: EngineSidecar, *, layer_info: str | None = None, force: bool = False
) -> Path | None:
    """Write the layer info (if any), then the sidecar, then the plan; all or nothing.

    Returns:
        The layer-info path, or ``None`` when there was none to write.

    Raises:
        OutputExistsError: a destination exists and ``force`` is false (nothing is left behind).
    """
    written: list[Path] = []
    layer_file = None
    try:
        if layer_info is not None:
            layer_file = atomic_write_text(layers_path(engine_path), layer_info, force=force)
            written.append(layer_file)
        text = json.dumps(sidecar.to_dict(), indent=2) + "\n"
        written.append(atomic_write_text(sidecar_path(engine_path), text, force=force))
        atomic_write_bytes(engine_path, plan, force=force)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return layer_file


__all__ = ["check_engine_outputs", "engine_outputs", "layers_path", "make_engine_sidecar", "write_engine_files"]
