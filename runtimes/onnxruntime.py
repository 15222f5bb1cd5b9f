"""ONNX Runtime backend: CPU by default; CUDA and TensorRT execution providers when installed.

The manifest comes from the model's ``metadata_props`` (or the JSON sidecar). A classifier ONNX
without a manifest is served with ImageNet preprocessing inferred from its input shape and a
warning, so generic models work, but nothing about them is promised.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from acmix_deploy.manifest import Manifest, ManifestError, Preprocessing, find_manifest

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
        ort = _import_ort()
        if not self.path.is_file():
            raise RunnerError(f"{self.path}: no such file")
        available = set(ort.get_available_providers())
        providers = [p for p in PROVIDERS[self.device] if p in available]
        if PROVIDERS[self.device][0] not in available:
            raise MissingDependencyError(
                f"{PROVIDERS[self.device][0]} is not available in this onnxruntime build "
                f"(have: {', '.join(sorted(available))}); install onnxruntime-gpu for cuda/tensorrt"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad files
            raise RunnerError(f"{self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise RunnerError(f"{self.path}: expected one image input, found {len(inputs)} inputs")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        return self._manifest_from_model(inputs[0], outputs[0])

    def _manifest_from_model(self, inp, out) -> Manifest:
        manifest = find_manifest(self.session.get_modelmeta().custom_metadata_map, self.path)
        if manifest is None:
            manifest = self._generic_manifest(inp, out)
        shape = inp.shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] != manifest.img_size or shape[3] != manifest.img_size:
            raise ManifestError(
                f"{self.path}: input shape {shape} does not match the manifest ({manifest.img_size} px)"
            )
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
            preprocessing=Preprocessing.for_family("generic", size),
            input_name=inp.name,
            output_name=out.name,
            batch={"dynamic": dynamic, "min": 1 if dynamic else shape[0], "max": 64 if dynamic else shape[0]},
        )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def _close(self) -> None:
        self.session = None
