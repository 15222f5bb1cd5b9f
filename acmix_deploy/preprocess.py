"""Image preprocessing with the training pipeline's numbers: resize, centre crop, scale, normalise.

Matches torchvision's evaluation transforms on PIL images (``Resize(resize)`` of the shorter side
with the given interpolation and antialiasing, ``CenterCrop(crop)``, ``ToTensor``, ``Normalize``),
which both official ACmix codebases use. Inputs: file paths, PIL images, HWC uint8 arrays,
or NCHW/CHW float arrays that are already preprocessed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import AcmixDeployError
from .manifest import Preprocessing

MAX_PIXELS = 100_000_000  # refuse decompression bombs before decoding them
MAX_RESIZED_PIXELS = 16_000_000  # beyond this, resize only the crop window (see resize_center_crop)
_INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class ImageError(AcmixDeployError):
    """An input could not be read or converted into a model input."""


def open_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        img = Image.open(path)
        if img.width * img.height > MAX_PIXELS:
            raise ImageError(f"{path}: {img.width}x{img.height} px exceeds the {MAX_PIXELS:,} pixel limit")
        img.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, ...) to 8-bit RGB; alpha is composited on black like PIL."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        img = _float_to_gray(np.asarray(img, dtype=np.float64))
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"cannot convert a {img.mode} image to RGB ({exc})") from None


def _float_to_gray(arr: np.ndarray) -> Image.Image:
    """A float ('F' mode, e.g. a 32-bit TIFF) image as 8-bit grey.

    Float images conventionally hold intensities in 0..1 (PIL's own conversion assumes 0..255
    and turned them all black); values in 0..1 are scaled by 255, others are taken as 0..255 and
    clipped, with a warning.
    """
    if not np.isfinite(arr).all():
        raise ImageError("float image contains NaN or Inf")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        arr = arr * 255.0
    elif lo < 0.0 or hi > 255.0:
        warnings.warn(f"float image with values in {lo:g}..{hi:g}: clipped to 0..255", stacklevel=4)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")


def resize_center_crop(img: Image.Image, pre: Preprocessing) -> Image.Image:
    """Shorter side to ``pre.resize`` (aspect kept), then the central ``pre.crop`` square."""
    w, h = img.size
    if min(w, h) <= 0:
        raise ImageError("empty image")
    if w <= h:
        new_w, new_h = pre.resize, int(pre.resize * h / w)
    else:
        new_w, new_h = int(pre.resize * w / h), pre.resize
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    method = _INTERPOLATION.get(pre.interpolation, Image.Resampling.BILINEAR)
    crop = pre.crop
    if new_w * new_h > MAX_RESIZED_PIXELS and new_w >= crop and new_h >= crop:
        # Pathological aspect ratios (a 40000x1 strip resizes to ~3M x 73 px): resample only the crop
        # window, bounding memory by the crop. PIL's box resampling can differ from resize-then-crop
        # by a grey level or so, which is why ordinary images take the exact path below.
        left, top = round((new_w - crop) / 2.0), round((new_h - crop) / 2.0)
        sx, sy = w / new_w, h / new_h
        return img.resize((crop, crop), method, box=(left * sx, top * sy, (left + crop) * sx, (top + crop) * sy))
    img = img.resize((new_w, new_h), method)
    w, h = img.size
    if w < crop or h < crop:  # as torchvision: pad with zeros when the resized image is smaller than the crop
        canvas = Image.new("RGB", (max(w, crop), max(h, crop)))
        canvas.paste(img, ((max(w, crop) - w) // 2, (max(h, crop) - h) // 2))
        img, (w, h) = canvas, canvas.size
    top, left = round((h - crop) / 2.0), round((w - crop) / 2.0)
    return img.crop((left, top, left + crop, top + crop))


def normalize(rgb: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """HWC uint8 -> CHW float32 in the model's normalised space."""
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_one(item, pre: Preprocessing) -> np.ndarray:
    """One image (path, PIL image, HWC uint8 array or CHW float array) -> CHW float32."""
    if isinstance(item, str | Path):
        item = open_image(item)
    if isinstance(item, Image.Image):
        return normalize(np.asarray(resize_center_crop(to_rgb(item), pre)), pre)
    if isinstance(item, np.ndarray):
        if item.dtype == np.uint8 and item.ndim == 3 and item.shape[-1] in (1, 3, 4):
            mode = {1: "L", 3: "RGB", 4: "RGBA"}[item.shape[-1]]
            return preprocess_one(Image.fromarray(item.squeeze(-1) if mode == "L" else item, mode=mode), pre)
        if item.ndim == 3 and item.shape[0] == 3 and np.issubdtype(item.dtype, np.floating):
            return check_model_input(item[None], pre.crop)[0]
        raise ImageError(
            f"array of shape {item.shape} and dtype {item.dtype}: expected an HWC uint8 image or a CHW float array"
        )
    raise ImageError(f"unsupported input type {type(item).__name__}")


def check_model_input(x: np.ndarray, size: int) -> np.ndarray:
    """Validate an already-preprocessed NCHW batch; return it as contiguous float32."""
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2:] != (size, size):
        raise ImageError(f"expected an array of shape (N, 3, {size}, {size}), got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ImageError(f"expected a float array, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ImageError("input contains NaN or Inf")
    return np.ascontiguousarray(x, dtype=np.float32)


def preprocess(items: Sequence | np.ndarray, pre: Preprocessing) -> np.ndarray:
    """A batch of inputs -> NCHW float32. An NCHW float array passes through after validation."""
    if isinstance(items, np.ndarray) and items.ndim == 4:
        return check_model_input(items, pre.crop)
    if isinstance(items, str | Path | Image.Image | np.ndarray):
        items = [items]
    if len(items) == 0:
        raise ImageError("no inputs")
    return np.stack([preprocess_one(item, pre) for item in items])
