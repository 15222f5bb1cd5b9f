"""A model repository for NVIDIA Triton Inference Server, built from our artifacts and their manifests.

Layout (Triton's model repository convention)::

    REPO/<name>/config.pbtxt
    REPO/<name>/labels.txt
    REPO/<name>/<version>/model.onnx | model.plan   (+ the ONNX's external data files, if any)
    REPO/triton_client_example.py

Writing into an existing model adds the next version and keeps the model's ``config.pbtxt`` and
``labels.txt`` as they are (instances, kind, batching, accelerator, and any hand edits): the
config is shared by every version, so only settings the caller gives explicitly change it, and
only in a config this module wrote (one edited by hand is refused rather than rewritten). An
artifact whose inputs/outputs/platform differ from the existing config, whose batch limit is below
the config's ``max_batch_size``, or whose class names differ from ``labels.txt`` is refused rather
than silently changing what the model serves. Metadata comes from
:func:`acmix_deploy.manifest.read_manifest`: an engine's batch limits are those of its optimisation
profile, not those of the ONNX it was built from.

Nothing is written outside ``REPO``: model names are plain names (letters, digits, ``_ . -``, not
starting with a dot: no separators, no ``..``, not hidden), a model folder that is a symbolic
link or not a folder is refused, and an ONNX model's manifest is checked against its graph
(:func:`acmix_deploy.manifest.check_graph`: names, size, batch, classes), so the config names
tensors the model has, at its shapes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.fileio import atomic_write_text
from acmix_deploy.labels import labels_for
from acmix_deploy.manifest import Manifest, ManifestError, check_graph, graph_io, read_manifest

from .triton_config import KINDS, PRECISION_MODES, ServingSettings, config_text, read_settings, signature

PLATFORMS = {
    ".onnx": ("onnxruntime_onnx", "model.onnx"),
    ".plan": ("tensorrt_plan", "model.plan"),
    ".engine": ("tensorrt_plan", "model.plan"),
}
DEFAULT_PREFERRED = (4, 8)
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class TritonError(AcmixDeployError):
    """The repository could not be written consistently."""


@dataclass
class TritonReport:
    model_dir: Path
    version: int
    config: str
    platform: str
    config_written: bool = True  # False: the model's existing config.pbtxt was kept as it was
    data_files: tuple[str, ...] = ()  # external data files copied next to the ONNX model


def external_data_files(model: Path) -> list[str]:
    """The external data files an ONNX model references, as paths relative to its folder.

    Raises:
        TritonError: a location escapes the model's folder (absolute, ``..``, or a link out of it)
            or names a file that is not there: ONNX Runtime would refuse (or read outside) it.
    """
    return _external_data(model, _onnx_proto(model))


def _onnx_proto(model: Path):
    import onnx

    try:
        return onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
        raise TritonError(f"{model}: not a readable ONNX model ({type(exc).__name__})") from None


def model_name(name: str | None, artifact: Path) -> str:
    """The model's name: ``name`` when given (checked), else the artifact's file name up to its first dot.

    Raises:
        TritonError: not a plain name (separators, ``..``, hidden, empty or over 128 characters).
    """
    if name is None:
        derived = re.sub(r"[^A-Za-z0-9_.-]", "_", artifact.name.lstrip(".").split(".")[0])
        if not MODEL_NAME.fullmatch(derived):
            raise TritonError(f"{artifact}: cannot derive a model name from the file name; pass --name")
        return derived
    if not MODEL_NAME.fullmatch(name):
        raise TritonError(
            f"--name {name!r}: a model name is letters, digits, _ . - (not starting with a dot, "
            "no separators, at most 128 characters)"
        )
    return name


def _external_data(model: Path, proto) -> list[str]:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    folder = model.parent.resolve()
    locations: list[str] = []
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = ExternalDataInfo(tensor).location
        target = (model.parent / location).resolve()
        if not location or os.path.isabs(location) or ".." in Path(location).parts or not target.is_relative_to(folder):
            raise TritonError(f"{model}: external data {location!r} of tensor {tensor.name!r} lies outside its folder")
        if not target.is_file():
            raise TritonError(f"{model}: external data file {location!r} of tensor {tensor.name!r} is missing")
        if location not in locations:
            locations.append(location)
    return locations


def _all_tensors(proto) -> list:
    """Every TensorProto of a model: initializers and constant attributes, in subgraphs and functions too."""
    found: list = []

    def graph(g) -> None:
        found.extend(g.initializer)
        found.extend(t for s in g.sparse_initializer for t in (s.values, s.indices))
        nodes(g.node)

    def nodes(items) -> None:
        for node in items:
            for attr in node.attribute:
                found.extend([attr.t] if attr.HasField("t") else [])
                found.extend(attr.tensors)
                for sub in [attr.g] if attr.HasField("g") else []:
                    graph(sub)
                for sub in attr.graphs:
                    graph(sub)

    graph(proto.graph)
    for function in proto.functions:
        nodes(function.node)
    return found


def _served_manifest(artifact: Path) -> Manifest:
    try:
        return read_manifest(artifact)
    except ManifestError as exc:
        raise TritonError(str(exc)) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TritonError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _settings(manifest: Manifest, asked: dict, existing: ServingSettings | None, model_dir: Path) -> ServingSettings:
    """The new version's serving settings: the existing model's (or the defaults), with what was asked."""
    limit = manifest.batch.max
    if "max_batch" in asked and asked["max_batch"] > limit:
        raise TritonError(f"--max-batch {asked['max_batch']} exceeds the artifact's limit of {limit}")
    if existing is None:
        base = ServingSettings(max_batch=limit, preferred=DEFAULT_PREFERRED)
    else:
        base = existing
        if manifest.batch.dynamic and "max_batch" not in asked and existing.max_batch > limit:
            raise TritonError(
                f"{model_dir}: the model serves max_batch_size {existing.max_batch} but this artifact holds at most "
                f"{limit}; pass --max-batch {limit} or use another --name"
            )
    settings = base.changed(**asked)
    max_batch = settings.max_batch if manifest.batch.dynamic else 0
    if manifest.batch.dynamic:
        preferred = tuple(b for b in settings.preferred if b <= max_batch) or (max_batch,)
        settings = settings.changed(preferred=preferred)
    if settings.kind not in KINDS:
        raise TritonError(f"--kind must be cpu or gpu, got {settings.kind!r}")
    if settings.instances < 1:
        raise TritonError(f"--instances must be >= 1, got {settings.instances}")
    return settings


def write_triton_repository(
    artifact: str | Path,
    repo: str | Path,
    *,
    name: str | None = None,
    max_batch: int | None = None,
    preferred_batch: list[int] | None = None,
    max_queue_delay_us: int | None = None,
    instances: int | None = None,
    kind: str | None = None,
    ort_tensorrt: bool | None = None,
    warmup: bool | None = None,
    labels: list[str] | None = None,
) -> TritonReport:
    """Add ``artifact`` as the next version of model ``name`` in the Triton repository ``repo``.

    Serving options left as None keep the existing model's settings (a new model gets the
    defaults: the artifact's batch limit, preferred batches 4 and 8, 100 us queue delay, one CPU
    instance, no accelerator, warm-up on). ``ort_tensorrt`` runs ONNX Runtime's TensorRT
    accelerator in the artifact's own precision. ``labels`` replaces the model's ``labels.txt``.

    Raises:
        TritonError: the artifact, its manifest, its external data or the requested settings do
            not fit, or the existing model serves something else (nothing is written then).
    """
    artifact, repo = Path(artifact), Path(repo)
    if not artifact.is_file():
        raise TritonError(f"{artifact}: no such file")
    if artifact.suffix not in PLATFORMS:
        raise TritonError(f"{artifact}: expected .onnx, .plan or .engine")
    platform, filename = PLATFORMS[artifact.suffix]
    if kind is not None and kind not in KINDS:
        raise TritonError(f"--kind must be cpu or gpu, got {kind!r}")
    if ort_tensorrt and platform != "onnxruntime_onnx":
        raise TritonError("the ORT TensorRT accelerator applies to ONNX models only")
    name = model_name(name, artifact)
    model_dir = repo / name
    if model_dir.is_symlink() or (model_dir.exists() and not model_dir.is_dir()):
        raise TritonError(f"{model_dir} is a link or not a folder; remove it or use another --name")
    existing_path = model_dir / "config.pbtxt"
    existing = _read_text(existing_path) if existing_path.is_file() else None
    current = read_settings(existing) if existing is not None else None
    if platform == "tensorrt_plan" and (kind or (current.kind if current else "cpu")) != "gpu":
        raise TritonError("TensorRT plans run on GPUs: use --kind gpu")
    manifest = _served_manifest(artifact)
    data_files = []
    if platform == "onnxruntime_onnx":
        try:  # the config must name tensors the model has, at the shapes it has
            check_graph(artifact, manifest, *graph_io(artifact))
        except ManifestError as exc:
            raise TritonError(str(exc)) from None
        data_files = external_data_files(artifact)
    if filename in data_files:
        raise TritonError(f"{artifact}: an external data file is named {filename}, the name Triton gives the model")

    precision_mode = PRECISION_MODES.get(manifest.precision, "FP32")
    asked = {
        "max_batch": max_batch,
        "preferred": tuple(preferred_batch) if preferred_batch is not None else None,
        "max_queue_delay_us": max_queue_delay_us,
        "instances": instances,
        "kind": kind,
        "warmup": warmup,
    }
    asked = {key: value for key, value in asked.items() if value is not None}  # None: keep the model's setting
    if ort_tensorrt is not None:
        asked["ort_precision"] = precision_mode if ort_tensorrt else None
    if existing is not None and current is None and asked:
        raise TritonError(f"{existing_path} was not written by acmix-deploy; edit it by hand or use another --name")
    settings = _settings(manifest, asked, current, model_dir)
    if settings.ort_precision not in (None, precision_mode):
        raise TritonError(
            f"{existing_path} runs ORT's TensorRT accelerator in {settings.ort_precision} but this artifact is "
            f"{manifest.precision}; pass --ort-tensorrt to rebuild the config for it, or use another --name"
        )
    config = config_text(name, platform, manifest, settings)
    if existing is not None:
        _check_fits(
            existing,
            config,
            existing_path,
            rewrite=bool(asked),
            understood=config_text(name, platform, manifest, current) if current else None,
        )
    names = labels_for(manifest.num_classes, labels if labels is not None else manifest.labels)
    labels_path = model_dir / "labels.txt"
    if labels is None and labels_path.is_file() and _read_text(labels_path).splitlines() != names:
        raise TritonError(f"{labels_path} names other classes than {artifact}; pass --labels or use another --name")

    version = _add_version(model_dir, artifact, filename, data_files)
    write_config = existing is None or bool(asked)
    if labels is not None or not labels_path.is_file():
        atomic_write_text(labels_path, "\n".join(names) + "\n", force=True)
    if write_config:
        atomic_write_text(existing_path, config, force=True)
    atomic_write_text(repo / "triton_client_example.py", CLIENT_EXAMPLE, force=True)
    served = config if write_config else existing
    return TritonReport(model_dir, version, served, platform, write_config, tuple(data_files))


def _check_fits(existing: str, config: str, path: Path, *, rewrite: bool, understood: str | None) -> None:
    """Refuse a version whose config would change what the model serves, or a rewrite that would lose edits.

    ``understood``: the config regenerated from the settings read back from ``existing``; it equals
    ``existing`` only when the file holds nothing but what this module writes.
    """
    if signature(existing) != signature(config):
        raise TritonError(f"{path.parent}: the existing config has other inputs/outputs/platform; use another --name")
    if rewrite and understood != existing:
        raise TritonError(
            f"{path} was edited by hand (or serves another preprocessing); change it yourself or use another --name"
        )


def _add_version(model_dir: Path, artifact: Path, filename: str, data_files: list[str]) -> int:
    """Copy the artifact (and its external data) into the next version folder, which appears whole or not at all."""
    # Every numbered entry counts, folders or not: a stray file named 3 must not make version 3 fail.
    versions = [int(p.name) for p in model_dir.glob("*") if p.name.isascii() and p.name.isdigit()]
    version = max(versions, default=0) + 1
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        # Staged next to its destination, then renamed into place in one step.
        with tempfile.TemporaryDirectory(prefix=f".{version}.", dir=model_dir) as staging:
            staged = Path(staging) / str(version)
            staged.mkdir()
            shutil.copyfile(artifact, staged / filename)
            for location in data_files:
                (staged / location).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(artifact.parent / location, staged / location)
            staged.rename(model_dir / str(version))
    except OSError as exc:
        raise TritonError(f"cannot write {model_dir}: {exc.strerror or exc}") from None
    return version


CLIENT_EXAMPLE = '''"""Classify an image with a model served by Triton over HTTP.

Needs: pip install "tritonclient[http]" pillow numpy
Usage: python triton_client_example.py MODEL_NAME IMAGE [--url localhost:8000] [--top-k 5]

The preprocessing (resize, centre crop, interpolation, mean, std) is read from the model's config
parameter "acmix_deploy.preprocessing", written by acmix-deploy from the artifact's manifest.
"""

import argparse
import json

import numpy as np
import tritonclient.http as httpclient
from PIL import Image


def preprocess(path: str, pre: dict) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (pre["resize"], int(pre["resize"] * h / w))
    else:
        size = (int(pre["resize"] * w / h), pre["resize"])
    method = Image.Resampling.BICUBIC if pre["interpolation"] == "bicubic" else Image.Resampling.BILINEAR
    img = img.resize(size, method)
    w, h, crop = img.size[0], img.size[1], pre["crop"]
    left, top = round((w - crop) / 2.0), round((h - crop) / 2.0)
    x = np.asarray(img.crop((left, top, left + crop, top + crop)), np.float32) / 255.0
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--url", default="localhost:8000")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    client = httpclient.InferenceServerClient(url=args.url)
    config = client.get_model_config(args.model)
    pre = json.loads(config["parameters"]["acmix_deploy.preprocessing"]["string_value"])
    inp, out = config["input"][0], config["output"][0]
    x = preprocess(args.image, pre)
    tensor = httpclient.InferInput(inp["name"], list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    request = httpclient.InferRequestedOutput(out["name"], class_count=args.top_k)
    result = client.infer(args.model, [tensor], outputs=[request])
    for entry in result.as_numpy(out["name"]).reshape(-1)[: args.top_k]:
        score, index, label = entry.decode().split(":", 2)
        print(f"{float(score):9.4f}  {index:>5}  {label}")


if __name__ == "__main__":
    main()
'''
