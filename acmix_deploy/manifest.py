"""The manifest every artifact carries: what the model is, how to feed it, and how it was proven.

Stored as ONNX ``metadata_props`` (key ``acmix_deploy.manifest``) and as a JSON sidecar next to
the artifact (``model.onnx`` -> ``model.onnx.json``), so a Predictor, the TensorRT builder or
the Triton exporter needs nothing but the artifact. Plain data only: this module knows nothing
of ONNX, ONNX Runtime or TensorRT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import AcmixDeployError

MANIFEST_KEY = "acmix_deploy.manifest"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ManifestError(AcmixDeployError):
    """A manifest is missing, malformed, or does not match its artifact."""


@dataclass
class Preprocessing:
    """How an RGB image becomes the model input: the official evaluation transforms.

    ResNet (``ResNet/main.py``): Resize(256) + CenterCrop(224), bilinear. Swin (``build_transform``
    with TEST.CROP): Resize(int(img / 0.875)) + CenterCrop(img), bicubic. Both then scale to [0, 1]
    and normalise with the ImageNet mean and std, NCHW float32.
    """

    resize: int
    crop: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    color: str = "RGB"

    @classmethod
    def for_family(cls, family: str, img_size: int) -> Preprocessing:
        interpolation = "bicubic" if family == "acmix_swin" else "bilinear"
        return cls(resize=int(img_size / 0.875), crop=img_size, interpolation=interpolation)


@dataclass
class Manifest:
    family: str
    hparams: dict
    img_size: int
    num_classes: int
    preprocessing: Preprocessing
    variant: str | None = None
    input_name: str = "input"
    output_name: str = "logits"
    batch: dict = field(default_factory=lambda: {"dynamic": True, "min": 1, "max": 32})
    precision: str = "fp32"
    opset: int | None = None
    rewrite: bool = True
    tools: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    labels: list[str] | None = None  # class names in output order; None: ImageNet-1k or class_<i>
    created: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        batch = "batch" if self.batch.get("dynamic") else int(self.batch["max"])
        return (batch, 3, self.img_size, self.img_size)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"manifest format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        try:
            pre = Preprocessing(**{**data["preprocessing"], "mean": tuple(data["preprocessing"]["mean"])})
            pre.std = tuple(pre.std)
            fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "preprocessing"}
            manifest = cls(preprocessing=pre, **fields)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"malformed manifest ({exc})") from None
        if not all(type(v) is int for v in (manifest.img_size, manifest.num_classes)):
            raise ManifestError("manifest img_size and num_classes must be integers")
        if manifest.img_size <= 0 or manifest.num_classes <= 0:
            raise ManifestError("manifest has a non-positive img_size or num_classes")
        if manifest.labels is not None:
            labels = manifest.labels
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise ManifestError("manifest labels must be a list of strings")
            bad = [x for x in labels if not x.strip() or x in (".", "..") or "/" in x or "\\" in x or "\n" in x]
            if bad:
                raise ManifestError(f"manifest labels must be usable as folder names; not {bad[0]!r}")
            if len(labels) != manifest.num_classes:
                raise ManifestError(f"manifest has {len(labels)} labels for {manifest.num_classes} classes")
        return manifest

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not valid JSON ({exc})") from None
        except RecursionError:
            raise ManifestError("manifest is not valid JSON (nested too deeply)") from None


def sidecar_path(artifact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def read_sidecar(artifact: str | Path) -> Manifest:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ManifestError(f"no manifest next to {artifact} (expected {path.name})")
    return Manifest.from_json(path.read_text())


def find_manifest(metadata: Mapping[str, str], artifact: str | Path) -> Manifest | None:
    """The manifest embedded in an artifact's metadata, else the one in its sidecar, else ``None``.

    ``metadata`` is the artifact's key/value metadata (ONNX ``metadata_props`` or ONNX Runtime's
    ``custom_metadata_map``). The embedded copy wins: it travels with the file when the sidecar
    is left behind.

    Raises:
        ManifestError: a manifest exists but is malformed.
    """
    if MANIFEST_KEY in metadata:
        return Manifest.from_json(metadata[MANIFEST_KEY])
    if sidecar_path(artifact).is_file():
        return read_sidecar(artifact)
    return None
