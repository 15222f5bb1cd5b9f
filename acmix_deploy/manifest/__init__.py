"""Artifact metadata, one owner: the typed manifest, the engine sidecar, and the one reader of both.

``read_manifest(path)`` is how every stage learns what an artifact is; ``Manifest`` and
``EngineSidecar`` are what every stage writes (exporters embed and write them; this package
never imports onnx, onnxruntime or tensorrt).
"""

from .engine import ENGINE_SIDECAR_FORMAT, ENGINE_SIDECAR_VERSION, EngineProfile, EngineSidecar
from .graph import GraphTensor, check_graph, graph_io, graph_mismatch
from .reader import (
    ENGINE_SUFFIXES,
    embedded_manifest,
    find_manifest,
    is_engine,
    read_engine_sidecar,
    read_manifest,
    read_sidecar,
    sidecar_path,
)
from .schema import (
    CROP_RATIO,
    DEFAULT_MAX_BATCH,
    FORMAT_VERSION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MANIFEST_KEY,
    BatchSpec,
    Manifest,
    ManifestError,
    Preprocessing,
)

__all__ = [
    "CROP_RATIO",
    "DEFAULT_MAX_BATCH",
    "ENGINE_SIDECAR_FORMAT",
    "ENGINE_SIDECAR_VERSION",
    "ENGINE_SUFFIXES",
    "FORMAT_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MANIFEST_KEY",
    "BatchSpec",
    "EngineProfile",
    "EngineSidecar",
    "GraphTensor",
    "Manifest",
    "ManifestError",
    "Preprocessing",
    "check_graph",
    "embedded_manifest",
    "find_manifest",
    "graph_io",
    "graph_mismatch",
    "is_engine",
    "read_engine_sidecar",
    "read_manifest",
    "read_sidecar",
    "sidecar_path",
]
