"""Corpus fixtures for the reliability suite: hostile and odd inputs, each with its expected outcome.

The CLI corpus runs in-process through ``cli.main`` (the function ``python -m cli`` and the
``acmix-deploy`` script call), so dozens of cases cost no interpreter start-ups; a few cases per
command also run through a real subprocess (``tests.test_cli.run_cli``) to pin the equivalence.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Intra-op threads fight client threads and other jobs on a 2-core machine: one keeps torch fast here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli_inproc(*args: str) -> CliResult:
    """Run ``acmix-deploy ARGS`` in this process through ``cli.main``; an escaping exception is a traceback."""
    import traceback

    import acmix_deploy.cli as cli

    out, err = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    sys.argv = ["acmix-deploy", *args]
    cli._state["debug"] = False
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what the real process would print as a traceback
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = saved_argv
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_clean_error(proc, code: int, fragment: str) -> None:
    """One ``error:`` line (or Typer's usage box), the exit code, no traceback, no 'unexpected error' fallback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "run with --debug" not in proc.stderr, f"unexpected exception type escaped: {proc.stderr}"
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(fragment.lower() in line.lower() for line in lines), proc.stderr
    if code == 1:
        assert len([line for line in lines if line.startswith("error:")]) == 1, proc.stderr


# -- evil pickles --------------------------------------------------------------------------


class SystemReduce:
    """Unpickling runs os.system(touch SENTINEL)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class FileWriteReduce:
    """Unpickling calls builtins.open(SENTINEL, 'w'), which creates the file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (str(self.sentinel), "w"))


# -- checkpoint corpus ---------------------------------------------------------------------


@dataclass
class CkptCase:
    path: Path
    api: str | None  # fragment of the CheckpointError from load_checkpoint; None: loads
    inspect: tuple[int, str]  # CLI `inspect` exit code and fragment ('' when it succeeds)
    export: tuple[int, str] | None  # CLI `export` exit code and fragment (None: not run, it would export)
    sentinel: Path | None = None
    warns: str | None = None


@pytest.fixture(scope="session")
def ckpt_corpus(tmp_path_factory) -> dict[str, CkptCase]:
    import torch

    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint
    from tests.conftest import SMALL_RESNET, randomize

    root = tmp_path_factory.mktemp("ckpt_corpus")
    model = randomize(acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET), seed=3)
    good = save_checkpoint(model, root / "good.pth", layout="official")
    data = good.read_bytes()
    legacy = root / "legacy.pth"
    torch.save({"state_dict": model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    cases: dict[str, CkptCase] = {}

    def add(name, api, inspect, export, **kw):
        cases[name] = CkptCase(root / name, api, inspect, export, **kw)

    (root / "truncated.pth").write_bytes(data[: len(data) // 3])
    add("truncated.pth", "corrupt or truncated", (1, "corrupt or truncated"), (1, "corrupt or truncated"))
    lb = legacy.read_bytes()
    (root / "truncated_legacy.pth").write_bytes(lb[: len(lb) // 2])
    add("truncated_legacy.pth", "corrupt or truncated", (1, "corrupt or truncated"), (1, "corrupt or truncated"))
    (root / "zero.pth").write_bytes(b"")
    add("zero.pth", "empty file", (1, "empty file"), (1, "empty file"))
    (root / "text.pth").write_text("epoch: 90\nthis is a training log, not weights\n")
    add("text.pth", "not a checkpoint", (1, "not a checkpoint"), (1, "not a checkpoint"))
    with zipfile.ZipFile(root / "notckpt.pth", "w") as z:
        z.writestr("readme.txt", "a zip archive that is not a torch checkpoint")
    add("notckpt.pth", "corrupt or truncated", (1, "corrupt or truncated"), (1, "corrupt or truncated"))
    plain = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "layer1.0.conv2.weight": torch.zeros(64, 64, 3, 3),
        "fc.weight": torch.zeros(1000, 2048),
    }
    torch.save(plain, root / "plain_resnet.pth")
    add("plain_resnet.pth", "plain ResNet", (1, "plain ResNet"), (1, "plain ResNet"))

    sd = model.state_dict()
    broken = dict(sd)
    del broken["layer2.0.conv2.rate1"]
    broken["layer2.0.conv2.surprise"] = torch.zeros(2)
    torch.save(broken, root / "keys.pth")
    add("keys.pth", "missing keys (1)", (0, ""), (1, "unexpected keys (1)"))
    reshaped = dict(sd)
    reshaped["layer3.0.conv2.dep_conv.weight"] = torch.zeros(3, 3)
    torch.save(reshaped, root / "shapes.pth")
    add("shapes.pth", "shape mismatches (1)", (0, ""), (1, "shape mismatches"))
    nan = {k: v.clone() for k, v in sd.items()}
    nan["fc.weight"][0, 0] = float("nan")
    nan["layer1.0.conv1.weight"].view(-1)[3] = float("inf")
    torch.save(nan, root / "nan.pth")
    add("nan.pth", None, (0, "non-finite"), None, warns="non-finite values")

    for kind, cls in (("system", SystemReduce), ("write", FileWriteReduce)):
        for legacy_fmt in (False, True):
            name = f"evil_{kind}_{'legacy' if legacy_fmt else 'zip'}.pth"
            sentinel = root / f"PWNED_{name}"
            payload = {"state_dict": sd, "epoch": 1, "hook": cls(sentinel)}
            torch.save(payload, root / name, _use_new_zipfile_serialization=not legacy_fmt)
            refused = "system" if kind == "system" else "open"
            add(name, refused, (1, "refused"), (1, "refused"), sentinel=sentinel)
    return cases


# -- ONNX corpus ---------------------------------------------------------------------------


def tiny_classifier(path: Path, *, img: int = 32, classes: int = 5, image_input: bool = True) -> Path:
    """A generic ONNX classifier built with onnx.helper: (N,3,img,img) -> (N,classes), no manifest."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if image_input:
        inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, img, img])
        nodes = [
            helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "B"], ["scores"], transB=1),
        ]
        w = rng.standard_normal((classes, 3)).astype(np.float32)
    else:
        inp = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 10])
        nodes = [helper.make_node("Gemm", ["pixels", "W", "B"], ["scores"], transB=1)]
        w = rng.standard_normal((classes, 10)).astype(np.float32)
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(classes, np.float32), "B")]
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


# -- image corpus --------------------------------------------------------------------------


def png_with_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR claims width x height (the pixel data stays 1x1): a decompression bomb header."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="session")
def image_corpus(tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    """name -> (file, None when it must be served, else the fragment of its refusal)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("image_corpus")
    rng = np.random.default_rng(5)
    rgb = Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8))
    cases: dict[str, tuple[Path, str | None]] = {}
    rgb.save(root / "ok.jpg", quality=90)
    cases["rgb_jpeg"] = (root / "ok.jpg", None)
    jpeg = (root / "ok.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(jpeg[:2] + b"\x00" * 64 + jpeg[66 : len(jpeg) // 2])
    cases["corrupt_jpeg"] = (root / "corrupt.jpg", "not a readable image")
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    cases["truncated_jpeg"] = (root / "truncated.jpg", "not a readable image")
    rgb.convert("L").save(root / "gray.png")
    cases["grayscale"] = (root / "gray.png", None)
    rgb.convert("RGBA").save(root / "rgba.png")
    cases["rgba"] = (root / "rgba.png", None)
    rgb.convert("P").save(root / "palette.png")
    cases["palette"] = (root / "palette.png", None)
    rgb.convert("P").save(root / "palette.gif")
    cases["palette_gif"] = (root / "palette.gif", None)
    rgb.convert("CMYK").save(root / "cmyk.jpg")
    cases["cmyk_jpeg"] = (root / "cmyk.jpg", None)
    Image.fromarray((rng.random((30, 20)) * 65535).astype(np.uint16)).save(root / "i16.png")
    cases["png_16bit"] = (root / "i16.png", None)
    Image.new("RGB", (1, 1), (10, 200, 30)).save(root / "one.png")
    cases["one_pixel"] = (root / "one.png", None)
    png_with_size(root / "bomb.png", 20000, 20000)
    cases["bomb_20000"] = (root / "bomb.png", "DecompressionBomb")
    png_with_size(root / "big.png", 12000, 12000)  # between PIL's warning and error thresholds
    cases["over_pixel_limit"] = (root / "big.png", "pixel limit")
    (root / "notes.png").write_text("not an image at all\n")
    cases["non_image"] = (root / "notes.png", "not a readable image")
    (root / "empty.png").write_bytes(b"")
    cases["empty_file"] = (root / "empty.png", "not a readable image")
    return cases


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """The small ACmix-ResNet-26 checkpoint the export tests use (official layout, named x.pth)."""
    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint
    from tests.conftest import SMALL_RESNET, randomize

    root = tmp_path_factory.mktemp("small_ckpt")
    model = randomize(acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET))
    return save_checkpoint(model, root / "x.pth", layout="official")


def python_subprocess(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
