"""ONNX Runtime backend: CPU by default; CUDA and TensorRT execution providers when installed.

The manifest comes from the model's ``metadata_props`` (or the JSON sidecar). A classifier ONNX
without a manifest is served with ImageNet preprocessing inferred from its input shape and a
warning, so generic models work, but nothing about them is promised.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from acmix_deploy.manifest import BatchSpec, GraphTensor, Manifest, Preprocessing, check_graph, find_manifest

from .base import MissingDependencyError, Runner, RunnerError

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
OPT_LEVELS = ("disable", "basic", "extended", "all")


def _import_ort():
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a core dependency
        raise MissingDependencyError("onnxruntime is not installed: pip install onnxruntime") from None
    return onnxruntime


def ort_session(
    model: object,
    *,
    device: str = "cpu",
    threads: int = 0,
    optimization: str = "all",
    spinning: bool = False,
    profile_prefix: str | Path | None = None,
    optimized_model_path: str | Path | None = None,
):
    """The one place an ONNX Runtime ``InferenceSession`` is made: runner, exporters, profiler, scripts.

    Args:
        model: an ``onnx.ModelProto`` (anything with ``SerializeToString``), serialized bytes, or a path.
        device: ``cpu``, ``cuda`` or ``tensorrt`` (execution providers, CPU last as the fallback).
        threads: intra-op threads; 0 lets ONNX Runtime choose.
        optimization: graph optimisation level, one of :data:`OPT_LEVELS`.
        spinning: let idle worker threads spin. Off by default: spinning threads steal the CPU from
            whatever runs next (torch, in side-by-side timing).
        profile_prefix: turn on ONNX Runtime's node profiler, writing JSON files with this prefix.
        optimized_model_path: save the graph as optimised for this session (int8 pre-processing uses it).

    Raises:
        RunnerError: unknown device or optimisation level.
        MissingDependencyError: the device's execution provider is not in this onnxruntime build.
    """
    ort = _import_ort()
    if device not in PROVIDERS:
        raise RunnerError(f"unknown onnxruntime device {device!r}; choose from {', '.join(PROVIDERS)}")
    if optimization not in OPT_LEVELS:
        raise RunnerError(f"unknown optimization level {optimization!r}; choose from {', '.join(OPT_LEVELS)}")
    available = set(ort.get_available_providers())
    if PROVIDERS[device][0] not in available:
        raise MissingDependencyError(
            f"{PROVIDERS[device][0]} is not available in this onnxruntime build "
            f"(have: {', '.join(sorted(available))}); install onnxruntime-gpu for cuda/tensorrt"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    serialize = getattr(model, "SerializeToString", None)
    data = serialize() if serialize is not None else model if isinstance(model, bytes) else str(model)
    providers = [p for p in PROVIDERS[device] if p in available]
    return ort.InferenceSession(data, options, providers=providers)


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        threads: int = 0,
        optimization: str = "all",
        spinning: bool = False,
    ) -> None:
        super().__init__(path)
        if device not in PROVIDERS:
            raise RunnerError(f"unknown onnxruntime device {device!r}; choose from {', '.join(PROVIDERS)}")
        if optimization not in OPT_LEVELS:
            raise RunnerError(f"unknown optimization level {optimization!r}; choose from {', '.join(OPT_LEVELS)}")
        self.device, self.threads, self.optimization, self.spinning = device, threads, optimization, spinning
        self.session = None

    def _load(self) -> Manifest:
        if not self.path.is_file():
            raise RunnerError(f"{self.path}: no such file")
        try:
            self.session = ort_session(
                self.path,
                device=self.device,
                threads=self.threads,
                optimization=self.optimization,
                spinning=self.spinning,
            )
        except RunnerError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad files
            raise RunnerError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise RunnerError(f"{self.path}: expected one image input, found {len(inputs)} inputs")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        return self._manifest_from_model(inputs[0], outputs)

    def _manifest_from_model(self, inp, outputs) -> Manifest:
        """The artifact's manifest (a generic one without), refused unless it describes the session's graph."""
        manifest = find_manifest(self.path)
        if manifest is None:
            manifest = self._generic_manifest(inp, outputs[0])
        graph = [GraphTensor(inp.name, tuple(inp.shape))], [GraphTensor(o.name, tuple(o.shape)) for o in outputs]
        check_graph(self.path, manifest, *graph)
        self.output_name = manifest.output_name
        return manifest

    def _generic_manifest(self, inp, out) -> Manifest:
        shape, out_shape = inp.shape, out.shape
        if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise RunnerError(f"{self.path}: no acmix-deploy manifest, and input {shape} is not an image batch")
        if len(out_shape) != 2 or not isinstance(out_shape[1], int):
            raise RunnerError(f"{self.path}: no acmix-deploy manifest, and output {out_shape} is not (N, classes)")
        warnings.warn(
            f"{self.path.name} has no acmix-deploy manifest: serving it as a generic classifier "
            "with ImageNet preprocessing",
            stacklevel=4,
        )
        size = int(shape[2])
        dynamic = not isinstance(shape[0], int)
        return Manifest(
            family="generic",
            hparams={},
            img_size=size,
            num_classes=int(out_shape[1]),
            preprocessing=Preprocessing.evaluation(size),
            input_name=inp.name,
            output_name=out.name,
            batch=BatchSpec(max=64) if dynamic else BatchSpec.fixed(shape[0]),
        )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def _close(self) -> None:
        self.session = None
