"""A model repository for NVIDIA Triton Inference Server, built from our artifacts and their manifests.

Layout (Triton's model repository convention)::

    REPO/<name>/config.pbtxt
    REPO/<name>/labels.txt
    REPO/<name>/<version>/model.onnx | model.plan
    REPO/triton_client_example.py

``config.pbtxt`` is written as protobuf text without a protobuf dependency; the tests parse it
with Triton's own ``ModelConfig`` schema (from tritonclient). Writing into an existing model adds
the next version; an artifact whose inputs/outputs differ from the existing config is refused
rather than silently changing what older versions are served with.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.fileio import atomic_write_text
from acmix_deploy.labels import labels_for
from acmix_deploy.manifest import Manifest, ManifestError, find_manifest, sidecar_path

PLATFORMS = {
    ".onnx": ("onnxruntime_onnx", "model.onnx"),
    ".plan": ("tensorrt_plan", "model.plan"),
    ".engine": ("tensorrt_plan", "model.plan"),
}


class TritonError(AcmixDeployError):
    """The repository could not be written consistently."""


@dataclass
class TritonReport:
    model_dir: Path
    version: int
    config: str
    platform: str


def read_manifest(artifact: Path) -> Manifest:
    """The manifest of an ONNX model (metadata or sidecar) or of an engine (its build sidecar)."""
    if artifact.suffix == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(artifact), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
            raise TritonError(f"{artifact}: not a readable ONNX model ({type(exc).__name__})") from None
        manifest = find_manifest({p.key: p.value for p in proto.metadata_props}, artifact)
        if manifest is not None:
            return manifest
    side = sidecar_path(artifact)
    if not side.is_file():
        raise TritonError(f"{artifact}: no acmix-deploy manifest (expected metadata or {side.name})")
    data = json.loads(side.read_text())
    for key in ("onnx_manifest", "manifest"):
        if isinstance(data.get(key), dict):
            data = data[key]
            break
    return Manifest.from_dict(data)


def _config_text(
    name: str,
    platform: str,
    manifest: Manifest,
    *,
    max_batch: int,
    preferred: list[int],
    max_queue_delay_us: int,
    instances: int,
    kind: str,
    ort_tensorrt: bool,
    warmup: bool,
) -> str:
    size, classes = manifest.img_size, manifest.num_classes
    fixed = not manifest.batch.get("dynamic", True)
    in_dims = [3, size, size]
    out_dims = [classes]
    if fixed:
        batch = int(manifest.batch["max"])
        in_dims, out_dims = [batch, *in_dims], [batch, *out_dims]
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {0 if fixed else max_batch}",
        "input [",
        "  {",
        f'    name: "{manifest.input_name}"',
        "    data_type: TYPE_FP32",
        "    format: FORMAT_NCHW",
        f"    dims: [ {', '.join(map(str, in_dims))} ]",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{manifest.output_name}"',
        "    data_type: TYPE_FP32",
        f"    dims: [ {', '.join(map(str, out_dims))} ]",
        '    label_filename: "labels.txt"',
        "  }",
        "]",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {'KIND_GPU' if kind == 'gpu' else 'KIND_CPU'}",
        "  }",
        "]",
    ]
    if not fixed:
        lines += [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
            f"  max_queue_delay_microseconds: {max_queue_delay_us}",
            "}",
        ]
    if ort_tensorrt:
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            '        parameters { key: "precision_mode" value: "FP16" }',
            '        parameters { key: "max_workspace_size_bytes" value: "4294967296" }',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    pre = json.dumps(asdict(manifest.preprocessing)).replace('"', '\\"')
    lines += [
        "parameters {",
        '  key: "acmix_deploy.preprocessing"',
        f'  value {{ string_value: "{pre}" }}',
        "}",
    ]
    if warmup:
        lines += [
            "model_warmup [",
            "  {",
            '    name: "random_input"',
            f"    batch_size: {0 if fixed else 1}",
            "    inputs {",
            f'      key: "{manifest.input_name}"',
            "      value {",
            "        data_type: TYPE_FP32",
            f"        dims: [ {', '.join(map(str, in_dims))} ]",
            "        random_data: true",
            "      }",
            "    }",
            "  }",
            "]",
        ]
    return "\n".join(lines) + "\n"


def _signature(config: str) -> str:
    """The parts of a config that every version must share: platform, batching, inputs, outputs."""
    keep = re.sub(r"(?s)(instance_group|dynamic_batching|optimization|parameters|model_warmup).*", "", config)
    keep = re.sub(r"max_batch_size: \d+\n", "", keep)
    return re.sub(r'name: "[^"]*"\n', "", keep, count=1)


def write_triton_repository(
    artifact: str | Path,
    repo: str | Path,
    *,
    name: str | None = None,
    max_batch: int | None = None,
    preferred_batch: list[int] | None = None,
    max_queue_delay_us: int = 100,
    instances: int = 1,
    kind: str = "cpu",
    ort_tensorrt: bool = False,
    warmup: bool = True,
    labels: list[str] | None = None,
) -> TritonReport:
    """Add ``artifact`` as the next version of model ``name`` in the Triton repository ``repo``."""
    artifact, repo = Path(artifact), Path(repo)
    if not artifact.is_file():
        raise TritonError(f"{artifact}: no such file")
    if artifact.suffix not in PLATFORMS:
        raise TritonError(f"{artifact}: expected .onnx, .plan or .engine")
    if kind not in ("cpu", "gpu"):
        raise TritonError(f"--kind must be cpu or gpu, got {kind!r}")
    if instances < 1:
        raise TritonError(f"--instances must be >= 1, got {instances}")
    platform, filename = PLATFORMS[artifact.suffix]
    if platform == "tensorrt_plan" and kind != "gpu":
        raise TritonError("TensorRT plans run on GPUs: use --kind gpu")
    if ort_tensorrt and platform != "onnxruntime_onnx":
        raise TritonError("the ORT TensorRT accelerator applies to ONNX models only")
    try:
        manifest = read_manifest(artifact)
    except ManifestError as exc:
        raise TritonError(f"{artifact}: {exc}") from None
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "_", artifact.name.split(".")[0])
    limit = int(manifest.batch.get("max", 1))
    max_batch = max_batch or limit
    if max_batch > limit:
        raise TritonError(f"--max-batch {max_batch} exceeds the artifact's limit of {limit}")
    preferred = [b for b in (preferred_batch or [4, 8]) if b <= max_batch] or [max_batch]
    config = _config_text(
        name,
        platform,
        manifest,
        max_batch=max_batch,
        preferred=preferred,
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        kind=kind,
        ort_tensorrt=ort_tensorrt,
        warmup=warmup,
    )
    model_dir = repo / name
    existing = model_dir / "config.pbtxt"
    if existing.is_file() and _signature(existing.read_text()) != _signature(config):
        raise TritonError(f"{model_dir}: the existing config has other inputs/outputs/platform; use another --name")
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    version = max(versions, default=0) + 1
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TritonError(f"cannot write {model_dir}: {exc.strerror or exc}") from None
    # Stage the version directory next to its destination, then rename it into place in one step.
    with tempfile.TemporaryDirectory(prefix=f".{version}.", dir=model_dir) as staging:
        staged = Path(staging) / str(version)
        staged.mkdir()
        shutil.copyfile(artifact, staged / filename)
        (Path(staging) / str(version)).rename(model_dir / str(version))
    names = labels_for(manifest.num_classes, labels if labels is not None else manifest.labels)
    atomic_write_text(model_dir / "labels.txt", "\n".join(names) + "\n", force=True)
    atomic_write_text(existing, config, force=True)
    atomic_write_text(repo / "triton_client_example.py", CLIENT_EXAMPLE, force=True)
    return TritonReport(model_dir, version, config, platform)


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
