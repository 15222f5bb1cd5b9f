"""Exporters: ONNX (with graph passes and validation), precision variants, TensorRT engines, Triton repositories.

``acmix_deploy.exporters.export(checkpoint, output_dir, ...)`` runs the whole export pipeline
(:mod:`.pipeline`). It is resolved on first use, so importing this package pulls in no heavy module.
"""

from __future__ import annotations

_PIPELINE = ("export", "plan_export", "ExportReport", "ExportPlan", "OnnxSettings", "Int8Settings", "EngineSettings")


def __getattr__(name: str):
    if name in _PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_PIPELINE)
