"""The inference functions behind the two Triton models: tensors to logits, encoded images to top-k.

Triton hands each function a list of requests: for the logits model, whatever its dynamic batcher
gathered within the queue delay; for the image model, one request at a time (see
:class:`ImagesModel`). Both run on one :class:`~acmix_deploy.predictor.Predictor`, shared by every
model instance: the Predictor is safe to call from many threads (its runner serialises the calls
where a backend is not reentrant), and one copy of the weights serves all instances.

Triton itself refuses a request whose tensor has the wrong data type or shape (it checks them
against the model configuration before batching), so the logits model never sees one; what the
image model decodes is checked here, and a bad upload becomes an error response for that request.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from acmix_deploy.predictor import Predictor, softmax
from acmix_deploy.preprocess import MAX_PIXELS, ImageError, preprocess_one

from .errors import RequestError

LOGITS_INPUT, LOGITS_OUTPUT = "input", "logits"
IMAGE_INPUT = "image"
IMAGE_OUTPUTS = ("label", "probability", "index")
MAX_ENCODED_BYTES = 32 * 1024 * 1024  # one encoded image; larger uploads are refused before decoding


class LogitsModel:
    """``input`` FP32 (N, 3, H, W) -> ``logits`` FP32 (N, classes), one runner call per gathered batch."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def __call__(self, requests: Sequence) -> list[dict[str, np.ndarray]]:
        arrays = [np.asarray(request[LOGITS_INPUT], dtype=np.float32) for request in requests]
        logits = self.predictor.infer(np.concatenate(arrays))
        ends = np.cumsum([len(a) for a in arrays])[:-1]
        return [{LOGITS_OUTPUT: rows} for rows in np.split(logits, ends)]


def decode_image(data: bytes) -> Image.Image:
    """Encoded bytes (JPEG, PNG, ...) -> a loaded PIL image, refusing image bombs before decoding pixels."""
    if len(data) > MAX_ENCODED_BYTES:
        raise RequestError(f"image of {len(data):,} bytes exceeds the {MAX_ENCODED_BYTES:,} byte limit")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:  # the header's claim, read before any pixel is decoded
            raise RequestError(f"{img.width}x{img.height} px exceeds the {MAX_PIXELS:,} pixel limit")
        img.load()
    except Image.DecompressionBombError:  # PIL's own guard, at twice its warning size: also over our limit
        raise RequestError(f"the image exceeds the {MAX_PIXELS:,} pixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RequestError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    return img


def _as_bytes(item) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, np.bytes_ | bytearray | memoryview):
        return bytes(item)
    raise RequestError(f"expected encoded image bytes, got {type(item).__name__}")


def capped_top_k(top_k: int, num_classes: int) -> int:
    """The classes the image model returns per image: ``top_k``, at most the model's class count (at least 1).

    One rule for what is answered, the output shapes bound and what ``serve`` prints.
    """
    return max(1, min(top_k, num_classes))


class ImagesModel:
    """``image`` BYTES (N, 1) -> ``label``/``probability``/``index`` (N, K), as ``Predictor.predict``.

    It runs without Triton's dynamic batcher on purpose: Triton reports a failed execution to every
    request in it, so gathering requests from different clients would let one undecodable upload
    fail its neighbours. Each request is one execution here (still batched: a request may carry
    many images, run in one call); concurrency comes from the model instances.
    """

    def __init__(self, predictor: Predictor, top_k: int) -> None:
        self.predictor = predictor
        self.top_k = capped_top_k(top_k, predictor.manifest.num_classes)

    def __call__(self, requests: Sequence) -> list[dict[str, np.ndarray]]:
        return [self._one(request[IMAGE_INPUT]) for request in requests]

    def _one(self, images: np.ndarray) -> dict[str, np.ndarray]:
        items = np.asarray(images, dtype=object).reshape(len(images), -1)
        if items.shape[1] != 1:
            raise RequestError(f"expected one encoded image per row, got rows of {items.shape[1]}")
        pre = self.predictor.manifest.preprocessing
        try:
            batch = np.stack([preprocess_one(decode_image(_as_bytes(item)), pre) for item in items[:, 0]])
        except ImageError as exc:  # decoded but not convertible (an odd mode, an empty image)
            raise RequestError(str(exc)) from None
        probs = softmax(self.predictor.infer(batch))
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]  # the Predictor's ranking
        labels = np.asarray(self.predictor.labels, dtype=object)
        return {
            "label": np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(labels[order]),
            "probability": np.take_along_axis(probs, order, axis=1).astype(np.float32),
            "index": order.astype(np.int32),
        }
