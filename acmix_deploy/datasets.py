"""A small real image dataset for demos and accuracy tests: scikit-learn's handwritten digits.

``sklearn.datasets.load_digits`` ships inside the scikit-learn wheel (1,797 8x8 grayscale images,
values 0..16, ten classes), so nothing is downloaded. Here each digit is scaled to 0..255,
upscaled to ``size`` x ``size`` with PIL bilinear resampling and made RGB; a fixed, seeded,
stratified split gives the train and held-out sets. :func:`write_digits_folder` writes a split
as an ImageNet-style folder (one sub-folder per class, PNG files), which is what
:func:`acmix_deploy.evaluate.evaluate` reads. scikit-learn is needed only when these are called.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import AcmixDeployError

DIGITS_SIZE = 64
DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.2
DIGITS_CLASSES = tuple(str(i) for i in range(10))  # class names in output order: the folder names below
SPLITS = ("train", "test", "all")


class DatasetError(AcmixDeployError):
    """A dataset could not be loaded or written."""


def load_digits_images(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as ``(N, size, size, 3)`` uint8 RGB images and ``(N,)`` int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(
            "the digits dataset needs scikit-learn (bundled in its wheel): pip install scikit-learn"
        ) from None
    digits = load_digits()
    images = np.stack([digit_to_rgb(d, size) for d in digits.images])
    return images, np.asarray(digits.target, dtype=np.int64)


def digit_to_rgb(digit: np.ndarray, size: int = DIGITS_SIZE) -> np.ndarray:
    """One 8x8 digit (values 0..16) -> ``(size, size, 3)`` uint8 RGB, bilinear upscaling."""
    gray = np.clip(np.rint(np.asarray(digit, np.float64) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    img = Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img.convert("RGB"))


def digits_split(
    labels: np.ndarray, *, seed: int = DIGITS_SEED, test_fraction: float = DIGITS_TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices (sorted): per class, a seeded permutation, the first
    ``round(test_fraction * count)`` held out. Depends only on numpy's PCG64 stream, not on sklearn."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(test_fraction * len(idx))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_dataset(
    split: str = "test",
    *,
    size: int = DIGITS_SIZE,
    seed: int = DIGITS_SEED,
    test_fraction: float = DIGITS_TEST_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, labels, dataset_indices)`` of one split (``train``, ``test`` or ``all``)."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    images, labels = load_digits_images(size)
    train, test = digits_split(labels, seed=seed, test_fraction=test_fraction)
    idx = {"train": train, "test": test, "all": np.arange(len(labels))}[split]
    return images[idx], labels[idx], idx


def write_digits_folder(
    dest: str | Path,
    split: str = "test",
    *,
    size: int = DIGITS_SIZE,
    seed: int = DIGITS_SEED,
    test_fraction: float = DIGITS_TEST_FRACTION,
) -> Path:
    """Write one split as ``dest/<digit>/<dataset index>.png`` (folders ``0`` .. ``9``); return ``dest``.

    ``dest`` may exist; files of the same name are overwritten, other files are left alone.
    The defaults are the split the shipped demo checkpoints were trained and evaluated on.
    """
    images, labels, indices = digits_dataset(split, size=size, seed=seed, test_fraction=test_fraction)
    dest = Path(dest)
    try:
        for name in DIGITS_CLASSES:
            (dest / name).mkdir(parents=True, exist_ok=True)
        for img, label, index in zip(images, labels, indices, strict=True):
            Image.fromarray(img, mode="RGB").save(dest / DIGITS_CLASSES[int(label)] / f"{int(index):04d}.png")
    except OSError as exc:
        raise DatasetError(f"cannot write the digits folder {dest}: {exc.strerror or exc}") from None
    return dest
