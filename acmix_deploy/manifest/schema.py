"""The manifest every artifact carries: what the model is, how to feed it, and how it was proven.

Stored as ONNX ``metadata_props`` (key ``acmix_deploy.manifest``) and as a JSON sidecar next to
the artifact (``model.onnx`` -> ``model.onnx.json``), so a Predictor, the TensorRT builder or
the Triton exporter needs nothing but the artifact. Every stage that learns something about an
artifact (export, precision conversion, engine build) records it in a typed field here; keys
written by a newer release that this one does not know are kept in ``extra`` and written back,
so a round trip never loses anything. Plain data only: no ONNX, ONNX Runtime or TensorRT here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import AcmixDeployError
from ..labels import label_problem
from ..text import is_printable

MANIFEST_KEY = "acmix_deploy.manifest"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875  # both official evaluation transforms resize to img_size / 0.875, then center-crop
DEFAULT_MAX_BATCH = 32
# Bounds on what an artifact may claim (a hostile manifest must not size our allocations).
MAX_IMG_SIZE = 4096  # pixels per side of the model input (checkpoint metadata has the same cap)
MAX_RESIZE = 4 * MAX_IMG_SIZE  # shorter side before the centre crop
MAX_CLASSES = 1 << 20  # outputs of a classifier (ImageNet-21k has 21841)
MAX_BATCH = 1 << 16
MAX_TEXT_CHARS = 256  # one name or short record (family, variant, precision, created)
INTERPOLATIONS = ("bilinear", "bicubic")
# Tensor names go into Triton configs, ONNX Runtime feeds and terminal output: ONNX-style names
# (torch.onnx's "input", "logits", "input.1", numbered "495", graph paths "/fc/Gemm_output_0").
TENSOR_NAME = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_.:/-]{0,255}")


class ManifestError(AcmixDeployError):
    """A manifest is missing, malformed, or does not match its artifact."""


def _is_int(value: object) -> bool:
    return type(value) is int


@dataclass(frozen=True)
class BatchSpec:
    """The batch sizes an artifact accepts: a dynamic range, or one fixed size (``min == max``).

    One default everywhere: an artifact that says nothing about its batch is dynamic, 1..32.
    """

    dynamic: bool = True
    min: int = 1
    max: int = DEFAULT_MAX_BATCH
    opt: int | None = None  # the size an engine profile was tuned for; None for ONNX

    def __post_init__(self) -> None:
        if type(self.dynamic) is not bool:
            raise ManifestError(f"batch.dynamic must be true or false, got {self.dynamic!r}")
        if not (_is_int(self.min) and _is_int(self.max)) or not 1 <= self.min <= self.max:
            raise ManifestError(f"batch limits must be integers with 1 <= min <= max, got {self.min!r}..{self.max!r}")
        if self.max > MAX_BATCH:
            raise ManifestError(f"batch.max {self.max} exceeds {MAX_BATCH}")
        if self.opt is not None and (not _is_int(self.opt) or not self.min <= self.opt <= self.max):
            raise ManifestError(f"batch.opt {self.opt!r} is outside {self.min}..{self.max}")
        if not self.dynamic and self.min != self.max:
            raise ManifestError(f"a fixed batch needs min == max, got {self.min}..{self.max}")

    @classmethod
    def fixed(cls, size: int) -> BatchSpec:
        return cls(dynamic=False, min=size, max=size)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"dynamic": self.dynamic, "min": self.min, "max": self.max}
        if self.opt is not None:
            data["opt"] = self.opt
        return data

    @classmethod
    def from_dict(cls, data: object) -> BatchSpec:
        if not isinstance(data, dict):
            raise ManifestError(f"manifest batch must be an object, got {type(data).__name__}")
        unknown = set(data) - {"dynamic", "min", "max", "opt"}
        if unknown:
            raise ManifestError(f"manifest batch has unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model input: the official evaluation transforms.

    ResNet (``ResNet/main.py``): Resize(256) + CenterCrop(224), bilinear. Swin (``build_transform``
    with TEST.CROP): Resize(int(img / 0.875)) + CenterCrop(img), bicubic. Both then scale to [0, 1]
    and normalise with the ImageNet mean and std, NCHW float32. Which interpolation a family uses
    is the family's knowledge (``acmix_deploy.families``); this class only holds the numbers.
    """

    resize: int
    crop: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    color: str = "RGB"

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            limit = MAX_RESIZE if name == "resize" else MAX_IMG_SIZE
            if not _is_int(value) or not 1 <= value <= limit:
                raise ManifestError(f"preprocessing.{name} must be an integer in 1..{limit}, got {_shown(value)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ManifestError(
                f"preprocessing.interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                f"got {_shown(self.interpolation)}"
            )
        for name in ("mean", "std"):
            object.__setattr__(self, name, _three_numbers(getattr(self, name), name))
        if not all(s > 0 for s in self.std):
            raise ManifestError(f"preprocessing.std must be positive, got {list(self.std)}")
        if self.layout != "NCHW" or self.color != "RGB":
            raise ManifestError(
                f"preprocessing layout/color must be NCHW/RGB, got {_shown(self.layout)}/{_shown(self.color)}"
            )

    @classmethod
    def evaluation(cls, img_size: int, interpolation: str = "bilinear") -> Preprocessing:
        """The official evaluation transform for ``img_size``: resize to img_size / 0.875, center-crop."""
        return cls(resize=int(img_size / CROP_RATIO), crop=img_size, interpolation=interpolation)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: object) -> Preprocessing:
        if not isinstance(data, dict):
            raise ManifestError("manifest preprocessing must be an object")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ManifestError(f"manifest preprocessing has unknown keys {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ManifestError(f"malformed manifest preprocessing ({exc})") from None


_OPTIONAL_RECORDS = ("precision_report", "int8_target", "calibration", "kept_fp32")  # written only when set
MAX_KEPT_FP32 = 4096  # names in kept_fp32 (a Swin-S has ~150 stage, block and branch names)


@dataclass(frozen=True)
class Manifest:
    """Everything any stage knows about one artifact. Frozen: derive changed copies with :meth:`replace`."""

    family: str
    hparams: dict
    img_size: int
    num_classes: int
    preprocessing: Preprocessing
    variant: str | None = None
    input_name: str = "input"
    output_name: str = "logits"
    batch: BatchSpec = field(default_factory=BatchSpec)
    precision: str = "fp32"
    opset: int | None = None
    rewrite: bool = True
    tools: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    labels: list[str] | None = None  # class names in output order; None: ImageNet-1k or class_<i>
    created: str = ""
    format_version: int = FORMAT_VERSION
    precision_report: dict | None = None  # fp16/int8 variants: parity vs fp32, accuracy, speed (exporters.precision)
    int8_target: str | None = None  # int8 variants: "cpu", "tensorrt" or "cpu-dynamic"
    calibration: dict | None = None  # static int8: the calibration images and method
    kept_fp32: list[str] | None = None  # fp16/int8 variants: blocks kept in fp32 (export --keep-fp32; profile's names)
    extra: dict = field(default_factory=dict)  # keys from a newer writer, kept verbatim

    def __post_init__(self) -> None:
        if not (_is_int(self.img_size) and _is_int(self.num_classes)):
            raise ManifestError("manifest img_size and num_classes must be integers")
        if self.img_size <= 0 or self.num_classes <= 0:
            raise ManifestError("manifest has a non-positive img_size or num_classes")
        if self.img_size > MAX_IMG_SIZE or self.num_classes > MAX_CLASSES:
            raise ManifestError(
                f"manifest img_size {self.img_size} / num_classes {self.num_classes} "
                f"exceed {MAX_IMG_SIZE} / {MAX_CLASSES}"
            )
        self._check_names()
        for name in (
            "hparams", "tools", "source", "parity", "extra", "precision_report", "calibration", "labels", "kept_fp32",
        ):  # fmt: skip
            object.__setattr__(self, name, _plain(getattr(self, name)))
        if not isinstance(self.batch, BatchSpec):
            object.__setattr__(self, "batch", BatchSpec.from_dict(self.batch))
        if not isinstance(self.preprocessing, Preprocessing):
            object.__setattr__(self, "preprocessing", Preprocessing.from_dict(self.preprocessing))
        if self.labels is not None and (problem := label_problem(self.labels, self.num_classes)) is not None:
            raise ManifestError(f"manifest {problem}")
        if self.preprocessing.crop != self.img_size:
            raise ManifestError(
                f"manifest preprocessing.crop {self.preprocessing.crop} differs from img_size {self.img_size}"
            )

    def _check_names(self) -> None:
        """Names and short records are printable text of bounded length; tensor names are ONNX-style."""
        for name in ("input_name", "output_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not TENSOR_NAME.fullmatch(value):
                raise ManifestError(
                    f"manifest {name} must be a tensor name (letters, digits, _ . : / -), got {_shown(value)}"
                )
        if self.input_name == self.output_name:
            raise ManifestError(f"manifest input_name and output_name are both {self.input_name!r}")
        for name in ("family", "precision", "created", "variant", "int8_target"):
            value = getattr(self, name)
            if value is None and name in ("variant", "int8_target"):
                continue
            if not is_printable(value) or len(value) > MAX_TEXT_CHARS:
                raise ManifestError(f"manifest {name} must be printable text, got {_shown(value)}")
        if type(self.rewrite) is not bool:
            raise ManifestError(f"manifest rewrite must be true or false, got {_shown(self.rewrite)}")
        if self.opset is not None and (not _is_int(self.opset) or not 1 <= self.opset <= 1000):
            raise ManifestError(f"manifest opset must be a positive integer, got {_shown(self.opset)}")
        for name in ("precision_report", "calibration"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise ManifestError(f"manifest {name} must be an object")
        if self.kept_fp32 is not None and (
            not isinstance(self.kept_fp32, list | tuple)
            or len(self.kept_fp32) > MAX_KEPT_FP32
            or not all(is_printable(n) and 0 < len(n) <= MAX_TEXT_CHARS for n in self.kept_fp32)
        ):
            raise ManifestError(
                f"manifest kept_fp32 must be at most {MAX_KEPT_FP32} block names, got {_shown(self.kept_fp32)}"
            )
        if not all(isinstance(k, str) for k in self.hparams):
            raise ManifestError("manifest hparams keys must be strings")

    @property
    def input_shape(self) -> tuple[int | str, int, int, int]:
        batch: int | str = "batch" if self.batch.dynamic else self.batch.max
        return (batch, 3, self.img_size, self.img_size)

    def replace(self, **changes: Any) -> Manifest:
        """A copy with ``changes`` applied (validated like any manifest)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL_RECORDS and value is None):
                continue
            if isinstance(value, BatchSpec | Preprocessing):
                value = value.to_dict()
            data[f.name] = _plain(value)
        return {**data, **_plain(self.extra)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Validate and type a manifest read from JSON.

        Raises:
            ManifestError: wrong format version, missing or mistyped fields.
        """
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"manifest format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        fields = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in fields and _required(f)]
        if missing:
            raise ManifestError(f"malformed manifest (missing {', '.join(missing)})")
        for key in ("hparams", "tools", "source", "parity"):
            if key in fields and not isinstance(fields[key], dict):
                raise ManifestError(f"manifest {key} must be an object")
        try:
            return cls(
                **{**fields, "batch": BatchSpec.from_dict(fields.get("batch", {}))},
                extra=extra,
            )
        except TypeError as exc:
            raise ManifestError(f"malformed manifest ({exc})") from None

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"manifest is not valid JSON ({exc})") from None
        except RecursionError:
            raise ManifestError("manifest is not valid JSON (nested too deeply)") from None


def _shown(value: object) -> str:
    """A field value as it appears in an error: its repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _three_numbers(value: object, name: str) -> tuple[float, float, float]:
    """``value`` as three finite floats (from a list or tuple of ints/floats), or a ManifestError naming the field."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ManifestError(f"preprocessing.{name} must be 3 numbers (R, G, B), got {_shown(value)}")
    if not all(_finite_number(v) for v in value):
        raise ManifestError(f"preprocessing.{name} must be 3 finite numbers, got {_shown(value)}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _finite_number(value: object) -> bool:
    if type(value) is int:
        return abs(value) < 2**53  # math.isfinite would overflow on a 400-digit integer
    return type(value) is float and math.isfinite(value)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _plain(value: Any) -> Any:
    """JSON-shaped copy: tuples become lists, so ``from_dict(to_dict(m)) == m`` compares like with like."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
