"""An export killed with SIGKILL leaves no partial artifact and never damages an existing one;
8 threads x 500 requests per CPU backend give the serial results bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from acmix_deploy import Predictor

REPO = Path(__file__).resolve().parents[2]


def _start_export(ckpt: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "acmix_deploy.cli", "export", str(ckpt), "-o", str(out), "--img-size", "64", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(scope="module")
def killed_after_stage(small_checkpoint, tmp_path_factory):
    """Export into an empty directory, SIGKILLed right after it prints the `passes` stage line."""
    out = tmp_path_factory.mktemp("killed_stage")
    proc = _start_export(small_checkpoint, out)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "] passes" in line:
            break
    _kill(proc)
    return out, seen


def test_killed_export_leaves_no_artifact(killed_after_stage):
    out, seen = killed_after_stage
    assert any("] passes" in line for line in seen), seen
    assert not list(out.glob("*.onnx")) and not list(out.glob("*.json"))
    assert not [p for p in out.iterdir() if p.name.endswith(".partial") and not p.name.startswith(".")]


@pytest.fixture(scope="module")
def killed_while_writing(small_checkpoint, tmp_path_factory):
    """`export --force` over an existing x.onnx, SIGKILLed as soon as its temporary file appears.

    The directory is polled while the export runs, so the kill lands inside the write window
    (between mkstemp and os.replace), the worst moment for a non-atomic writer.
    """
    out = tmp_path_factory.mktemp("killed_write")
    old_onnx, old_json = b"known bytes of an older model" * 100, b'{"older": "manifest"}\n'
    (out / "x.onnx").write_bytes(old_onnx)
    (out / "x.onnx.json").write_bytes(old_json)
    partial_seen = None
    for _attempt in range(5):  # the write window is milliseconds long: a poll can miss it on a quiet machine
        (out / "x.onnx").write_bytes(old_onnx)
        (out / "x.onnx.json").write_bytes(old_json)
        proc = _start_export(small_checkpoint, out, "--force", "--skip-latency")
        lines: list[str] = []
        reader = threading.Thread(target=lambda proc=proc, lines=lines: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            partial = [p.name for p in os.scandir(out) if p.name.endswith(".partial")]
            if partial:
                partial_seen = partial
                break
            time.sleep(0.0005)
        _kill(proc)
        reader.join(timeout=5)
        if partial_seen:
            break
    return {"out": out, "old": (old_onnx, old_json), "partial_seen": partial_seen, "lines": lines}


def test_killed_write_keeps_the_existing_artifact(killed_while_writing):
    state = killed_while_writing
    out, (old_onnx, old_json) = state["out"], state["old"]
    assert state["partial_seen"], f"the export ended before its temporary file was seen: {state['lines']}"
    assert (out / "x.onnx").read_bytes() == old_onnx
    assert (out / "x.onnx.json").read_bytes() == old_json
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["x.onnx", "x.onnx.json"]


def test_next_write_removes_temporaries_of_a_killed_writer(killed_while_writing):
    """SIGKILL leaves no chance to clean up: the hidden temporary stays until the next write of the same
    file, which removes temporaries whose writer process is gone (and still changes nothing on abort)."""
    from acmix_deploy.fileio import atomic_output

    out = killed_while_writing["out"]
    before = (out / "x.onnx").read_bytes()
    with pytest.raises(RuntimeError), atomic_output(out / "x.onnx", force=True):
        raise RuntimeError("abort")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]
    assert (out / "x.onnx").read_bytes() == before


# -- concurrency ---------------------------------------------------------------------------

THREADS, REQUESTS = 8, 500


@pytest.mark.parametrize("key", ["onnx", "checkpoint"], ids=["onnxruntime", "torch"])
def test_many_threads_match_serial_results(small_artifacts, key):
    options = {"img_size": 64} if key == "checkpoint" else {"threads": 1}
    predictor = Predictor.load(small_artifacts[key], **options)
    assert predictor.runner.backend == ("torch" if key == "checkpoint" else "onnxruntime")
    rng = np.random.default_rng(11)
    inputs = [rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for i in range(12)]
    serial = [predictor.infer(x) for x in inputs]
    errors: list[BaseException] = []
    done = [0] * THREADS
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        try:
            start.wait()
            for k in range(REQUESTS):
                i = (t * 7 + k) % len(inputs)
                got = predictor.infer(inputs[i])
                if not np.array_equal(got, serial[i]):
                    raise AssertionError(
                        f"thread {t} request {k}: differs from serial, max {abs(got - serial[i]).max()}"
                    )
                done[t] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    predictor.close()
    assert not errors, errors[0]
    assert done == [REQUESTS] * THREADS
