"""The one reader of artifact metadata: ONNX models (embedded or sidecar) and TensorRT engines.

Every consumer (runners, the TensorRT builder, precision conversion, Triton, the CLI) asks
:func:`read_manifest`; nothing else in the code base parses a manifest or a sidecar. Every
failure is a :class:`ManifestError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..fileio import read_bounded_text
from .engine import EngineSidecar
from .onnx_metadata import OnnxMetadataError, read_onnx_metadata
from .schema import MANIFEST_KEY, Manifest, ManifestError

T = TypeVar("T")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
MAX_SIDECAR_BYTES = 64 << 20


def sidecar_path(artifact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def is_engine(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(ENGINE_SUFFIXES)


def _read_json(path: Path, what: str) -> object:
    text = read_bounded_text(path, what, MAX_SIDECAR_BYTES, error=ManifestError)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ManifestError(f"{path}: {what} is not valid JSON (nested too deeply)") from None


def _in_file(path: Path, error: ManifestError) -> ManifestError:
    return ManifestError(f"{path}: {error}") if str(path) not in str(error) else error


def _from_sidecar(artifact: str | Path, what: str, parse: Callable[[object], T], missing: str) -> T:
    """``parse`` of the JSON in ``<artifact>.json``, every failure a ManifestError naming that file."""
    side = sidecar_path(artifact)
    if not side.is_file():
        raise ManifestError(missing.format(artifact=artifact, expected=side.name))
    try:
        return parse(_read_json(side, what))
    except ManifestError as exc:
        raise _in_file(side, exc) from None


def read_engine_sidecar(engine: str | Path) -> EngineSidecar:
    """The typed ``<engine>.json`` of a TensorRT engine.

    Raises:
        ManifestError: no sidecar, or one that is unreadable, not JSON or not an engine sidecar.
    """
    missing = "no sidecar next to {artifact} (expected {expected}); rebuild the engine with acmix-deploy"
    return _from_sidecar(engine, "engine sidecar", EngineSidecar.from_dict, missing)


def embedded_manifest(onnx_path: str | Path) -> Manifest | None:
    """The manifest in an ONNX file's ``metadata_props``, or None when it has none.

    Raises:
        ManifestError: not a readable ONNX file, or a malformed embedded manifest.
    """
    onnx_path = Path(onnx_path)
    try:
        metadata = read_onnx_metadata(onnx_path)
    except OnnxMetadataError as exc:
        raise ManifestError(f"{onnx_path}: not a readable ONNX model ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"{onnx_path}: cannot read it ({exc.strerror or exc})") from None
    if MANIFEST_KEY not in metadata:
        return None
    try:
        return Manifest.from_json(metadata[MANIFEST_KEY])
    except ManifestError as exc:
        raise _in_file(onnx_path, exc) from None


def read_sidecar(artifact: str | Path) -> Manifest:
    """The manifest in ``<artifact>.json`` alone (the embedded copy is not consulted).

    Raises:
        ManifestError: no sidecar, or a malformed one.
    """
    missing = "no manifest next to {artifact} (expected {expected})"
    return _from_sidecar(artifact, "manifest sidecar", Manifest.from_dict, missing)


def find_manifest(artifact: str | Path) -> Manifest | None:
    """Like :func:`read_manifest`, but None (not an error) for an ONNX model that carries no manifest.

    The embedded copy wins over the sidecar: it travels with the file when the sidecar is left behind.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise ManifestError(f"{artifact}: no such file")
    if is_engine(artifact):
        return read_engine_sidecar(artifact).served_manifest()
    manifest = embedded_manifest(artifact)
    if manifest is not None:
        return manifest
    return read_sidecar(artifact) if sidecar_path(artifact).is_file() else None


def read_manifest(artifact: str | Path) -> Manifest:
    """The manifest of an artifact: ONNX (embedded metadata, else ``<file>.json``) or engine (its sidecar).

    For an engine this is the manifest it serves: batch limits from its optimisation profile,
    precision from its build.

    Raises:
        ManifestError: no such file, no manifest, or missing/corrupt/non-UTF-8/wrong-version metadata.
    """
    manifest = find_manifest(artifact)
    if manifest is None:
        raise ManifestError(
            f"{artifact}: no acmix-deploy manifest (expected {MANIFEST_KEY} metadata or "
            f"{sidecar_path(artifact).name}); export it with `acmix-deploy export`"
        )
    return manifest
