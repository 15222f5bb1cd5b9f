"""Fixtures for the serving tests: the demo model as ONNX, free loopback ports, encoded test images."""

from __future__ import annotations

import io
import socket
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEMO_MAX_BATCH = 16


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now (the kernel's pick, released at once)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def demo_onnx(tmp_path_factory):
    """The shipped digits ACmix-ResNet exported to ONNX (64 px, batches up to 16, class names 0..9)."""
    from acmix_deploy.exporters.onnx import export_onnx

    checkpoint = Path(str(resources.files("acmix_deploy").joinpath("data/demo/digits_acmix_resnet26.pth")))
    path = tmp_path_factory.mktemp("serving") / "digits.onnx"
    export_onnx(checkpoint, path, img_size=64, validate_batches=[1], max_batch=DEMO_MAX_BATCH)
    return path


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def digit_images() -> list[bytes]:
    """Encoded real digits (PNG and JPEG) and a few odd ones (grey, RGBA, a wide random image)."""
    from acmix_deploy.datasets import load_digits_images

    images, _ = load_digits_images()
    rng = np.random.default_rng(3)
    picks = [Image.fromarray(images[i]) for i in (0, 1, 2, 3, 5)]
    return [
        *(encode(img) for img in picks[:3]),
        encode(picks[3], "JPEG"),
        encode(picks[4].convert("L")),
        encode(picks[0].convert("RGBA")),
        encode(Image.fromarray((rng.random((37, 91, 3)) * 255).astype(np.uint8)), "JPEG"),
    ]


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed): an image bomb without the memory."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(data)
