"""A Triton Inference Server in front of one artifact: start, wait, stop (blocking or not).

:class:`Server` loads the artifact into a :class:`~acmix_deploy.predictor.Predictor`, binds the two
models of :mod:`.handlers` with PyTriton and starts the ``tritonserver`` binary PyTriton ships
(HTTP and gRPC speak the KServe v2 protocol, metrics are Prometheus text). ``start()`` returns once
both models answer; ``stop()`` sends the server SIGINT and waits for it. :func:`serve` is the
blocking form the ``serve`` command runs: it stops cleanly on SIGINT or SIGTERM.

PyTriton guards the server's model-control endpoints (loading/unloading models, shared memory)
with a generated access token (header ``triton-access-token``), so a client cannot replace the
models; the statistics endpoint stays open, as it is on a plain Triton server (the metrics port
shows the same counters anyway), so ``curl .../v2/models/NAME/stats`` shows how requests batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acmix_deploy.predictor import Predictor

from .environment import require_pytriton, server_environment
from .errors import ServingError
from .handlers import IMAGE_INPUT, LOGITS_INPUT, LOGITS_OUTPUT, ImagesModel, LogitsModel, capped_top_k

IMAGES_SUFFIX = "_images"
TOKEN_HEADER = "triton-access-token"
RESTRICTED_ENDPOINTS = ["model-repository", "shared-memory"]  # PyTriton's default also hides statistics
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ServeOptions:
    """How to serve an artifact. ``None`` means: from the artifact's manifest.

    Attributes:
        name: model name (default: the artifact's file name up to its first dot); the image model
            is ``name + "_images"``.
        host: address every endpoint binds to; loopback by default, ``0.0.0.0`` to expose it.
        http_port, grpc_port, metrics_port: the three listening ports.
        max_batch: Triton's ``max_batch_size`` (default and upper bound: the manifest's batch limit).
        max_queue_delay_us: how long the dynamic batcher waits to gather requests into one batch.
        instances: model instances per model (concurrent executions).
        top_k: classes the image model returns per image (capped at the class count).
        backend, device, threads: how the artifact runs (as ``Predictor.load``).
        exit_timeout_s: how long stopping waits for requests in flight.
        log_file: Triton's log (default: a temporary file, removed on stop).
        verbose: Triton's log on stdout and PyTriton's warnings (a traceback per failed request).
    """

    name: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int | None = None
    max_queue_delay_us: int = 500
    instances: int = 1
    top_k: int = 5
    backend: str | None = None
    device: str | None = None
    threads: int = 0
    exit_timeout_s: int = 3
    log_file: Path | None = None
    verbose: bool = False


def default_name(artifact: str | Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(artifact).name.split(".")[0])
    return stem or "model"


def check_ports_free(host: str, ports: list[int]) -> None:
    """Refuse ports another process listens on (gRPC would otherwise share one silently)."""
    if len(set(ports)) != len(ports):
        raise ServingError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
    for port in ports:
        if not 0 < port < 65536:
            raise ServingError(f"port {port} is out of range")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ServingError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


class Server:
    """One artifact served by Triton as two models; a context manager (``with Server(...) as s``)."""

    def __init__(self, artifact: str | Path, options: ServeOptions | None = None) -> None:
        self.artifact = Path(artifact)
        self.options = options or ServeOptions()
        self.name = self.options.name or default_name(self.artifact)
        if not _NAME.match(self.name):
            raise ServingError(f"model name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        if self.options.instances < 1 or self.options.top_k < 1 or self.options.max_queue_delay_us < 0:
            raise ServingError("instances and top_k must be >= 1, max_queue_delay_us >= 0")
        self.predictor: Predictor | None = None
        self.max_batch = 0
        self._triton = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def image_model(self) -> str:
        return self.name + IMAGES_SUFFIX

    @property
    def endpoints(self) -> dict[str, str]:
        host, o = self.options.host, self.options
        return {
            "http": f"http://{host}:{o.http_port}",
            "grpc": f"{host}:{o.grpc_port}",
            "metrics": f"http://{host}:{o.metrics_port}/metrics",
        }

    @property
    def access_token(self) -> str | None:
        return self._triton.get_access_token() if self._triton is not None else None

    def start(self) -> Server:
        """Load the artifact, start Triton and return once both models are ready."""
        require_pytriton()
        o = self.options
        check_ports_free(o.host, [o.http_port, o.grpc_port, o.metrics_port])
        self.predictor = self._load_predictor()
        try:
            self._start_triton()
        except BaseException:
            self.stop()
            raise
        return self

    def _load_predictor(self) -> Predictor:
        o = self.options
        runner_options: dict = {"threads": o.threads} if o.threads else {}
        if o.device is not None:
            runner_options["device"] = int(o.device) if o.device.isdigit() else o.device
        predictor = Predictor.load(self.artifact, backend=o.backend, **runner_options)
        limit = predictor.manifest.batch.max
        self.max_batch = o.max_batch or limit
        if not 1 <= self.max_batch <= limit:
            predictor.close()
            raise ServingError(f"--max-batch {self.max_batch}: {self.artifact.name} runs at most {limit} per call")
        return predictor

    def _start_triton(self) -> None:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

        o, predictor = self.options, self.predictor
        assert predictor is not None
        logging.getLogger("pytriton").setLevel(logging.INFO if o.verbose else logging.ERROR)
        log_file = o.log_file
        if log_file is None and not o.verbose:
            self._tmp = tempfile.TemporaryDirectory(prefix="acmix-serve-")
            log_file = Path(self._tmp.name) / "tritonserver.log"
        config = TritonConfig(
            http_address=o.host, grpc_address=o.host, metrics_address=o.host,
            http_port=o.http_port, grpc_port=o.grpc_port, metrics_port=o.metrics_port,
            exit_timeout_secs=o.exit_timeout_s, log_file=log_file, allow_gpu_metrics=False,
        )  # fmt: skip
        self._triton = Triton(
            config=config, security_config=TritonSecurityConfig(restricted_endpoints=RESTRICTED_ENDPOINTS)
        )
        size, classes = predictor.manifest.img_size, predictor.manifest.num_classes
        k = capped_top_k(o.top_k, classes)
        self._triton.bind(
            model_name=self.name,
            infer_func=[LogitsModel(predictor) for _ in range(o.instances)],
            inputs=[Tensor(name=LOGITS_INPUT, dtype=np.float32, shape=(3, size, size))],
            outputs=[Tensor(name=LOGITS_OUTPUT, dtype=np.float32, shape=(classes,))],
            config=ModelConfig(
                max_batch_size=self.max_batch,
                batcher=DynamicBatcher(max_queue_delay_microseconds=o.max_queue_delay_us),
            ),
            strict=True,
        )
        self._triton.bind(
            model_name=self.image_model,
            infer_func=[ImagesModel(predictor, o.top_k) for _ in range(o.instances)],
            inputs=[Tensor(name=IMAGE_INPUT, dtype=np.bytes_, shape=(1,))],
            outputs=[
                Tensor(name="label", dtype=np.bytes_, shape=(k,)),
                Tensor(name="probability", dtype=np.float32, shape=(k,)),
                Tensor(name="index", dtype=np.int32, shape=(k,)),
            ],
            config=ModelConfig(max_batch_size=self.max_batch, batcher=None),  # why no batcher: see ImagesModel
            strict=True,
        )
        with server_environment():
            try:
                self._triton.run()
            except Exception as exc:  # noqa: BLE001 - PyTriton raises client, timeout and runtime errors
                raise ServingError(f"Triton could not start the models: {_cause(exc)}{self._log_tail()}") from None
        for model in (self.name, self.image_model):  # PyTriton only logs a model that failed to load
            if not self._model_ready(model):
                raise ServingError(f"model {model} did not load{self._log_tail()}")

    def _model_ready(self, model: str, timeout_s: float = 10.0) -> bool:
        url = f"{self.endpoints['http']}/v2/models/{model}/ready"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.status == 200
        except OSError:  # urllib's HTTPError (400: not ready) and connection errors
            return False

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def wait(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Block until ``stop`` is set; a server that dies on its own is a :class:`ServingError`."""
        while not stop.wait(poll_s):
            if not self.is_alive():
                raise ServingError(f"the Triton server stopped unexpectedly{self._log_tail()}")

    def statistics(self, model: str | None = None, timeout_s: float = 5.0) -> dict:
        """Triton's statistics of ``model`` (default: the logits model): counts and times per batch size."""
        url = f"{self.endpoints['http']}/v2/models/{model or self.name}/stats"
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        """Stop Triton (requests in flight get ``exit_timeout_s``) and close the artifact; idempotent."""
        triton, self._triton = self._triton, None
        if triton is not None:
            triton.stop()
        if self.predictor is not None:
            self.predictor.close()
            self.predictor = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _log_tail(self) -> str:
        log = self.options.log_file or (Path(self._tmp.name) / "tritonserver.log" if self._tmp else None)
        if log is None or not log.is_file():
            return ""
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("E")] or lines  # Triton marks error lines E<date>
        return f" (Triton: {errors[-1][:300]})" if errors else ""

    def describe(self) -> list[str]:
        """The lines ``serve`` prints once ready: endpoints, then the models and how they batch."""
        o, e = self.options, self.endpoints
        k = capped_top_k(o.top_k, self.predictor.manifest.num_classes)  # what the image model answers
        return [
            f"HTTP     {e['http']}/v2/models/{{{self.name},{self.image_model}}}/infer",
            f"gRPC     {e['grpc']}",
            f"metrics  {e['metrics']}",
            f"ready: {self.name} (input [N,3,{self.predictor.manifest.img_size},{self.predictor.manifest.img_size}]"
            f" -> logits) and {self.image_model} (encoded images -> top {k}); max batch {self.max_batch},"
            f" queue delay {o.max_queue_delay_us} us, {o.instances} instance(s), {self.predictor.runner.describe()}",
        ]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _cause(exc: BaseException) -> str:
    """The line of a (remote) traceback that says what went wrong: its last ``SomeError: ...`` line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return ((causes or lines or [type(exc).__name__])[-1])[:300]


def serve(
    artifact: str | Path, options: ServeOptions | None = None, on_ready: Callable[[list[str]], None] | None = None
) -> None:
    """Serve ``artifact`` until SIGINT or SIGTERM, then stop cleanly (the ``serve`` command).

    Args:
        artifact: checkpoint, ONNX model or engine.
        options: ports, batching and runtime options.
        on_ready: called with :meth:`Server.describe`'s lines once both models are ready.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Server(artifact, options) as server:
            if on_ready is not None:
                on_ready(server.describe())
            server.wait(stop)
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
