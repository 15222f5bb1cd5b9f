"""Every command on every hostile file: one line and exit 1, within a time bound, nothing written outside OUT.

Each case stands for a class of attack from the security issue: forged tensor views, archive
formats that extract to disk, metadata that recurses or reaches the terminal, manifests that
inject into configs or disagree with their graph. Commands run in-process (``cli.main``) on a
watchdog thread, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from .conftest import CliResult, run_cli_inproc

DEADLINE_S = 60.0


def _checkpoints(root: Path) -> dict[str, Path]:
    import torch

    from acmix_deploy.models import build_model
    from tests.conftest import SMALL_RESNET, randomize

    weights = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=5).state_dict()
    files: dict[str, Path] = {}

    def save(name: str, obj: object) -> None:
        files[name] = root / name
        torch.save(obj, files[name])

    save("stride0.pth", {"state_dict": {**weights, "fc.weight": torch.zeros(1).as_strided((10, 512), (0, 0))}})
    save("meta.pth", {"state_dict": {**weights, "fc.bias": torch.empty(10, device="meta")}})
    loop: list = []
    loop.append(loop)
    save("loop_meta.pth", {"state_dict": {**weights, "bad": torch.zeros(16).as_strided((4, 4), (1, 0))}, "arch": loop})
    for kind, kind_type in (("fifo", tarfile.FIFOTYPE), ("link", tarfile.SYMTYPE)):
        path = root / f"tar_{kind}.pth"
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
            pad = tarfile.TarInfo("\x80pad")
            pad.size = 1
            tar.addfile(pad, io.BytesIO(b"x"))
            member = tarfile.TarInfo("storages")
            member.type, member.linkname = kind_type, "/etc/passwd"
            tar.addfile(member)
        files[path.name] = path
    return files


def _onnx(root: Path, small_onnx: Path) -> dict[str, Path]:
    import onnx

    from acmix_deploy.manifest import MANIFEST_KEY

    edits = {
        "inject.onnx": {"output_name": 'logits"\n  }\n]\nbackend: "python'},
        "ansi_labels.onnx": {"labels": ["\x1b]0;owned\x07"] + [str(i) for i in range(1, 10)]},
        "wrong_classes.onnx": {"num_classes": 7, "labels": None},
        "zero_std.onnx": {"preprocessing": {"resize": 73, "crop": 64, "std": [0, 0, 0]}},
    }
    files = {}
    for name, change in edits.items():
        proto = onnx.load(small_onnx)
        for prop in proto.metadata_props:
            if prop.key == MANIFEST_KEY:
                data = json.loads(prop.value)
                if "preprocessing" in change:
                    change = {"preprocessing": {**data["preprocessing"], **change["preprocessing"]}}
                prop.value = json.dumps({**data, **change})
        onnx.save(proto, root / name)
        files[name] = root / name
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_artifacts) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    return {**_checkpoints(root), **_onnx(root, small_artifacts["onnx"])}


def _bounded(*args: str) -> CliResult:
    box: list[CliResult] = []
    worker = threading.Thread(target=lambda: box.append(run_cli_inproc(*args)), daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    assert not worker.is_alive(), f"acmix-deploy {' '.join(args)} still running after {DEADLINE_S:.0f} s"
    return box[0]


def _commands(path: Path, out: Path, image: Path) -> list[list[str]]:
    if path.suffix == ".pth":
        return [["inspect", str(path)], ["export", str(path), "-o", str(out), "--skip-latency"]]
    return [
        ["inspect", str(path)],
        ["predict", str(path), str(image)],
        ["triton", str(path), "--output-dir", str(out / "repo"), "--name", "m"],
    ]


CASES = [
    "stride0.pth", "meta.pth", "loop_meta.pth", "tar_fifo.pth", "tar_link.pth",
    "inject.onnx", "ansi_labels.onnx", "wrong_classes.onnx", "zero_std.onnx",
]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_every_command_refuses_in_one_line_in_bounded_time(corpus, name, tmp_path):
    from PIL import Image

    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(image)
    out = tmp_path / "out"
    watched = [corpus[name].parent, tmp_path]
    before = {p for folder in watched for p in folder.rglob("*")}
    for args in _commands(corpus[name], out, image):
        proc = _bounded(*args)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if args[0] == "inspect" and name.endswith(".onnx"):
            # inspect shows what an ONNX holds (a refused manifest is reported, not fatal); it does
            # not load the graph, so it cannot see a class count that disagrees with it.
            assert proc.returncode in (0, 1), (args, proc.stderr)
        else:
            assert proc.returncode == 1, (args, proc.stderr)
            lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert len(lines) == 1, (args, proc.stderr)
        assert "\x1b" not in proc.stdout + proc.stderr and "\r" not in proc.stderr, args
    after = {p for folder in watched for p in folder.rglob("*")}
    assert {p for p in after - before if out not in p.parents and p != out} == set()
    assert not (out / "repo").exists() or not any((out / "repo").rglob("config.pbtxt"))
