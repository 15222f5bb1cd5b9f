"""The build stage: a builder, its logger and progress monitor, and the serialized plan it produces.

TensorRT reports through callbacks: an ``ILogger`` (kept errors end up in the
:class:`~.base.BuildError` when the build fails) and, where the API has it, an
``IProgressMonitor`` (top-level phases go to the ``progress`` callback). Both are built by
factories because their base classes only exist once ``tensorrt`` is imported.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from acmix_deploy.runtimes.base import RunnerError
from acmix_deploy.runtimes.tensorrt import create_runtime, deserialize_engine

from .base import BuildError, Progress

NO_LOGGED_ERRORS = (
    "  (no error message reached this builder's logger: TensorRT keeps the first logger while any "
    "builder or runtime lives in this process)"
)


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that prints warnings and keeps errors (``.errors``) for the BuildError message."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self._lock = threading.Lock()

        def log(self, severity, msg) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                with self._lock:
                    self.errors.append(str(msg))
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {severity.name}: {msg}", flush=True)

    return _Logger()


def make_progress_monitor(trt: Any, progress: Progress) -> Any | None:
    """An ``IProgressMonitor`` that reports top-level phases, or ``None`` where the API lacks it."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        # TensorRT calls these from its own threads: keep them cheap and thread-safe.
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                with self._lock:
                    progress("build", f"{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            pass

    return _Monitor()


def create_builder(trt: Any, logger: Any) -> Any:
    """A ``trt.Builder``, or a BuildError saying a GPU is needed.

    Raises:
        BuildError: TensorRT could not create it (no visible CUDA device, driver problem).
    """
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as exc:  # no CUDA: "pybind11::init(): factory function returned nullptr"
        raise BuildError(f"TensorRT could not create a builder: no usable CUDA GPU or driver ({exc})") from None
    if builder is None:  # pragma: no cover - the bindings raise instead; kept for other wrappers
        raise BuildError("TensorRT could not create a builder: no usable CUDA GPU or driver")
    return builder


def build_failure_message(logged_errors: Sequence[str]) -> str:
    """The BuildError text for a failed build: the last ten logged errors, or why there are none."""
    detail = "\n".join(f"  {m}" for m in logged_errors[-10:]) or NO_LOGGED_ERRORS
    return f"TensorRT failed to build the engine:\n{detail}"


def build_serialized_plan(trt: Any, builder: Any, network: Any, config: Any, logger: Any, progress: Progress) -> bytes:
    """Build the engine and return its serialized plan (the bytes an ``.engine`` file holds).

    Raises:
        BuildError: the build failed; the message holds what the logger caught.
    """
    monitor = make_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(build_failure_message(logger.errors))
    return bytes(memoryview(serialized))


def inspect_plan_layers(trt: Any, logger: Any, plan: bytes) -> str:
    """The engine inspector's per-layer JSON for ``plan``, indented (as given when it is not JSON).

    The plan must have been built with detailed profiling verbosity for the layers to carry
    more than their names.

    Raises:
        BuildError: TensorRT cannot deserialise the plan it just built.
    """
    try:
        runtime = create_runtime(trt, logger)  # a runtime must outlive the engines it deserialises: keep it named
        engine = deserialize_engine(runtime, plan, "the engine just built")
    except RunnerError as exc:
        raise BuildError(f"{exc}, so its layers cannot be listed") from None
    inspector = engine.create_engine_inspector()
    if inspector is None:
        raise BuildError("TensorRT could not create an engine inspector for the engine it built")
    return pretty_json(inspector.get_engine_information(trt.LayerInformationFormat.JSON) or "")


def pretty_json(text: str) -> str:
    """``text`` re-indented when it is JSON; otherwise unchanged (whatever the inspector gave is kept)."""
    try:
        return json.dumps(json.loads(text), indent=2) + "\n"
    except json.JSONDecodeError:
        return text


__all__ = [
    "build_failure_message",
    "build_serialized_plan",
    "create_builder",
    "inspect_plan_layers",
    "make_logger",
    "make_progress_monitor",
    "pretty_json",
]
