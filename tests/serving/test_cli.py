"""``acmix-deploy serve`` in a subprocess: the ready line, an answer, SIGTERM and SIGINT, a restart on its ports."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytriton")
http = pytest.importorskip("tritonclient.http")

from .conftest import free_ports  # noqa: E402

READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15


class ServeProcess:
    """The CLI serving in a subprocess, its stdout lines collected by a thread."""

    def __init__(self, artifact, ports: list[int]) -> None:
        http_port, grpc_port, metrics_port = ports
        args = ["serve", str(artifact), "--name", "digits", "--http-port", str(http_port)]
        args += ["--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), "--threads", "1"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "acmix_deploy.cli", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, self.proc.stderr.read()
                continue
            self.stdout.append(line)
            if line.startswith("ready:"):
                return
        self.proc.kill()
        pytest.fail(f"no ready line within {READY_TIMEOUT_S} s: {''.join(self.stdout)}")

    def stop(self, sig: signal.Signals) -> tuple[int, float, str]:
        """Send ``sig``; the exit code, the seconds it took, and stderr."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running {STOP_TIMEOUT_S} s after {sig.name}")
        return code, time.monotonic() - started, self.proc.stderr.read()


def answer(http_port: int) -> np.ndarray:
    with http.InferenceServerClient(f"127.0.0.1:{http_port}", connection_timeout=30, network_timeout=30) as client:
        x = np.zeros((2, 3, 64, 64), np.float32)
        inp = http.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer("digits", [inp], timeout=30).as_numpy("logits")


def test_serve_stops_on_sigterm_and_sigint_and_restarts_on_the_same_ports(demo_onnx):
    ports = free_ports(3)
    for sig in (signal.SIGTERM, signal.SIGINT):  # the second run reuses the first one's ports
        server = ServeProcess(demo_onnx, ports)
        try:
            server.wait_ready()
            printed = "".join(server.stdout)
            assert f"http://127.0.0.1:{ports[0]}" in printed and f"127.0.0.1:{ports[1]}" in printed
            assert f"http://127.0.0.1:{ports[2]}/metrics" in printed
            assert answer(ports[0]).shape == (2, 10)
        finally:
            code, seconds, stderr = server.stop(sig)
        assert code == 0, stderr
        assert seconds < 10, f"{sig.name}: {seconds:.1f} s to stop"
        assert "Traceback" not in stderr and "stopped" in stderr.splitlines()[-1], stderr
