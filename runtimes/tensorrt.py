"""TensorRT backend: run a plain TensorRT plan built by ``exporters.tensorrt.build_engine``.

The engine file is an unmodified TensorRT plan; everything else (the model's manifest, the
optimisation profile, the TensorRT version and GPU it was built for) lives in the JSON sidecar
``<engine>.json``, a typed :class:`acmix_deploy.manifest.EngineSidecar` read by the package's one
metadata reader (:func:`acmix_deploy.manifest.read_engine_sidecar`). Engines are specific to the
TensorRT version and GPU that built them unless built portable, so the runner compares the
sidecar with the running TensorRT and GPU first, by NVIDIA's rules (:mod:`.tensorrt_compat`), and
refuses a mismatch with a message instead of letting deserialisation fail obscurely. An engine
with several optimisation profiles is run on the one that holds each batch
(:mod:`.tensorrt_profiles`, ``set_optimization_profile_async``).

Execution uses the TensorRT 10/11 tensor-name API (``set_input_shape``, ``infer_shapes``,
``set_tensor_address``, ``execute_async_v3``) on a non-default CUDA stream, with torch CUDA tensors
as buffers (allocated once per batch size). Optionally the enqueue is captured into a CUDA graph
after one warm-up run, and per-layer times are collected with an ``IProfiler``.

``tensorrt`` (and torch's CUDA side) are imported only when a runner is loaded, so the package
works without them.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import numpy as np

from acmix_deploy.manifest import EngineSidecar, Manifest, read_engine_sidecar

from .base import MissingDependencyError, Runner, RunnerError
from .tensorrt_compat import check_engine_compatibility
from .tensorrt_profiles import BatchRange, split_batch

INSTALL_HINT = "pip install 'acmix-deploy[tensorrt]'"


def import_tensorrt():
    """The ``tensorrt`` module, or a :class:`MissingDependencyError` that says what is wrong with it.

    Each failure gets its own message: the package is absent; it is present but a module it needs
    is not (a half-installed ``tensorrt``); its Python bindings are present but the native
    libraries they link (``libnvinfer.so.N``...) do not load; anything else. A missing native
    library is an ``ImportError`` on Linux (the dynamic loader's, with the extension's ``path``),
    not an ``OSError``, so telling them apart by exception type alone reported an installed
    TensorRT as "not installed".
    """
    try:
        import tensorrt
    except ModuleNotFoundError as exc:
        if exc.name in (None, "tensorrt"):
            raise MissingDependencyError(
                f"TensorRT is not installed: {INSTALL_HINT} on a machine with an NVIDIA GPU"
            ) from None
        raise MissingDependencyError(
            f"TensorRT is installed but incomplete: it needs the module {exc.name!r}; reinstall with {INSTALL_HINT}"
        ) from None
    except ImportError as exc:
        loader = ".so" in str(exc) or str(exc.path or "").endswith(tuple(EXTENSION_SUFFIXES))
        if not loader:  # not the dynamic loader's (a compiled module's): some other import problem
            raise MissingDependencyError(
                f"TensorRT cannot be imported ({_first_line(exc)}); reinstall with {INSTALL_HINT}"
            ) from None
        raise _native_libraries_missing(exc) from None
    except OSError as exc:  # a ctypes load of libnvinfer & co. in the package's __init__
        raise _native_libraries_missing(exc) from None
    return tensorrt


def _native_libraries_missing(exc: BaseException) -> MissingDependencyError:
    return MissingDependencyError(
        f"TensorRT is installed but its native libraries do not load ({_first_line(exc)}): install the "
        f"TensorRT libraries matching its Python bindings ({INSTALL_HINT}) or put their directory on "
        "LD_LIBRARY_PATH"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def create_runtime(trt: Any, logger: Any) -> Any:
    """A ``trt.Runtime``, or a :class:`RunnerError` saying a usable CUDA GPU is needed.

    When CUDA cannot initialise (no GPU, no driver, a driver too old for this TensorRT) the
    native factory returns NULL and pybind11 raises ``TypeError: pybind11::init(): factory function
    returned nullptr``; that is not a type error of ours, so it is reported as what it is.

    Raises:
        RunnerError: TensorRT could not create the runtime.
    """
    try:
        runtime = trt.Runtime(logger)
    except (TypeError, RuntimeError) as exc:
        raise RunnerError(
            f"TensorRT could not create a runtime: no usable CUDA GPU or driver ({_first_line(exc)})"
        ) from None
    if runtime is None:  # pragma: no cover - the bindings raise instead; kept for other wrappers
        raise RunnerError("TensorRT could not create a runtime: no usable CUDA GPU or driver")
    return runtime


def deserialize_engine(runtime: Any, plan: bytes, name: str) -> Any:
    """``runtime.deserialize_cuda_engine(plan)``, with a one-line :class:`RunnerError` for every failure.

    TensorRT returns ``None`` for a plan it cannot read (truncated, another version's, built for
    another GPU) after logging why; some failures raise instead.
    """
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise RunnerError(f"{name}: TensorRT could not deserialise the engine ({_first_line(exc)})") from None
    if engine is None:
        raise RunnerError(f"{name}: TensorRT could not deserialise the engine (see the TensorRT log above)")
    return engine


def trt_major(version: str) -> int:
    """``"10.15.1.29"`` -> ``10``."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise RunnerError(f"cannot read the TensorRT version {version!r}") from None


def cuda_device_info(device: int = 0) -> dict[str, Any]:
    """Name, compute capability and CUDA runtime version of ``device``.

    Uses torch.cuda when it sees a GPU, else cuda-python; the sidecar and the compatibility check
    need the same strings whichever is installed.

    Raises:
        RunnerError: no CUDA device could be queried.
    """
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(device)
            return {
                "name": torch.cuda.get_device_name(device),
                "compute_capability": f"{major}.{minor}",
                "cuda": torch.version.cuda,
                "source": "torch",
            }
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    try:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python
        err, props = cudart.cudaGetDeviceProperties(device)
        if int(err) != 0:
            raise RunnerError(f"cudaGetDeviceProperties failed ({err})")
        err, version = cudart.cudaRuntimeGetVersion()
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {
            "name": name.rstrip("\x00"),
            "compute_capability": f"{props.major}.{props.minor}",
            "cuda": f"{version // 1000}.{(version % 1000) // 10}" if int(err) == 0 else None,
            "source": "cuda-python",
        }
    except ImportError:
        pass
    raise RunnerError("no CUDA GPU is visible (torch.cuda.is_available() is False and cuda-python is not installed)")


def make_layer_profiler(trt):
    """An ``IProfiler`` subclass instance collecting per-layer milliseconds.

    Built by a factory because the base class only exists once ``tensorrt`` is imported.
    """

    class LayerProfiler(trt.IProfiler):
        """Accumulates ``report_layer_time`` callbacks; TensorRT calls it once per layer per run."""

        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self._times: dict[str, list[float]] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self._times.setdefault(layer_name, []).append(float(ms))

        def layer_times(self) -> dict[str, float]:
            """Mean milliseconds per layer over the recorded runs, in execution order."""
            return {name: sum(v) / len(v) for name, v in self._times.items()}

        def reset(self) -> None:
            self._times.clear()

    return LayerProfiler()


class TensorRTRunner(Runner):
    """Run a TensorRT engine with its acmix-deploy sidecar.

    Args:
        path: the engine (``.engine``/``.plan``); its sidecar is ``<path>.json``.
        device: CUDA device index.
        cuda_graph: capture the enqueue into a CUDA graph per batch size after one warm-up run
            (lower launch overhead for small batches). Incompatible with ``profile``.
        profile: attach an ``IProfiler``; read the results with :meth:`layer_times`.
    """

    backend = "tensorrt"
    thread_safe = False  # one execution context and one set of buffers

    def __init__(self, path: str | Path, *, device: int = 0, cuda_graph: bool = False, profile: bool = False) -> None:
        super().__init__(path)
        if cuda_graph and profile:
            raise RunnerError("per-layer profiling and CUDA graphs exclude each other; choose one")
        self.device, self.cuda_graph, self.profile = device, cuda_graph, profile
        self.sidecar: EngineSidecar | None = None
        self._trt = self._torch = None
        self._engine = self._context = self._stream = self._profiler = None
        self._buffers: dict[int, tuple[Any, Any]] = {}
        self._graphs: dict[int, Any] = {}
        self._bound: int | None = None
        self._ranges: list[BatchRange] = []
        self._active_profile = 0  # a new execution context starts on profile 0

    def _load(self) -> Manifest:
        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise RunnerError("TensorRT engines need a CUDA GPU, and torch sees none")
        if not self.path.is_file():
            raise RunnerError(f"{self.path}: no such file")
        self.sidecar = read_engine_sidecar(self.path)  # ManifestError, one line, for a missing or corrupt one
        gpu = cuda_device_info(self.device)
        portability = check_engine_compatibility(self.sidecar, trt.__version__, gpu["name"], gpu["compute_capability"])
        manifest = self.sidecar.served_manifest()  # batch limits from the profile, precision from the build
        self._ranges = engine_profiles(self.sidecar)

        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = create_runtime(trt, logger)  # keep it: it must outlive the engine
        if portability.version_compatible and not portability.exclude_lean_runtime:
            # The plan embeds the lean runtime (host code); we built it, the sidecar says so: allow it.
            self._runtime.engine_host_code_allowed = True
        engine = deserialize_engine(self._runtime, self.path.read_bytes(), str(self.path))
        if engine.num_optimization_profiles != len(self._ranges):
            raise RunnerError(
                f"{self.path}: the engine has {engine.num_optimization_profiles} optimisation profile(s), its "
                f"sidecar lists {len(self._ranges)}: they do not belong together"
            )
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise RunnerError(f"{self.path}: expected one input and an output, found {inputs} -> {outputs}")
        self.input_name = inputs[0]
        self.output_name = manifest.output_name if manifest.output_name in outputs else outputs[0]
        self._in_dtype = _torch_dtype(torch, trt, engine.get_tensor_dtype(self.input_name))
        self._out_dtype = _torch_dtype(torch, trt, engine.get_tensor_dtype(self.output_name))

        self._context = engine.create_execution_context()
        if self._context is None:
            raise RunnerError(f"{self.path}: could not create an execution context (out of GPU memory?)")
        if self.profile:
            self._profiler = make_layer_profiler(trt)
            self._context.profiler = self._profiler
        self._stream = torch.cuda.Stream(device=self.device)  # enqueueV3 wants a non-default stream
        self._trt, self._torch, self._engine = trt, torch, engine
        return manifest

    @property
    def batch_limits(self) -> tuple[int, int]:
        """The smallest and largest batch any profile holds (the base class splits above the largest).

        The manifest's ``batch`` (what servers are told) stops at a gap between profiles; this
        runner serves batches in a gap too, split across profiles (:func:`.tensorrt_profiles.split_batch`).
        """
        self.activate()
        return min(r.min for r in self._ranges), max(r.max for r in self._ranges)

    def _use_profile(self, index: int) -> None:
        """Switch the execution context to optimisation profile ``index`` (on this runner's stream)."""
        if index == self._active_profile:
            return
        if not self._context.set_optimization_profile_async(index, self._stream.cuda_stream):
            raise RunnerError(f"TensorRT could not switch to optimisation profile {index} ({self._ranges[index]})")
        self._active_profile, self._bound = index, None

    def _bind(self, n: int, profile: int):
        """Select ``profile``, set shapes and addresses for batch ``n``; buffers are allocated once per ``n``."""
        torch = self._torch
        size = self.manifest.img_size
        self._use_profile(profile)
        if n not in self._buffers:
            shape = (n, 3, size, size)
            if not self._context.set_input_shape(self.input_name, shape):
                raise RunnerError(f"batch {n} is outside the engine's profile {profile} ({self._ranges[profile]})")
            try:
                unresolved = self._context.infer_shapes()
            except (RuntimeError, TypeError, ValueError) as exc:
                raise RunnerError(
                    f"TensorRT could not infer the output shapes for batch {n}: {_first_line(exc)}"
                ) from None
            if unresolved:
                raise RunnerError(f"TensorRT could not infer the shapes of {list(unresolved)}")
            out_shape = tuple(self._context.get_tensor_shape(self.output_name))
            device = torch.device("cuda", self.device)
            inp = torch.empty(shape, dtype=self._in_dtype, device=device)
            out = torch.empty(out_shape, dtype=self._out_dtype, device=device)
            self._buffers[n] = (inp, out)
            self._bound = None
        inp, out = self._buffers[n]
        if self._bound != n:
            self._context.set_input_shape(self.input_name, tuple(inp.shape))
            self._context.set_tensor_address(self.input_name, inp.data_ptr())
            self._context.set_tensor_address(self.output_name, out.data_ptr())
            self._bound = n
        return inp, out

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise RunnerError("TensorRT execution failed (execute_async_v3 returned False)")

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        pieces = split_batch(len(batch), self._ranges)  # one piece unless the batch is in a gap between profiles
        outs, start = [], 0
        for profile, size in pieces:
            outs.append(self._infer_piece(batch[start : start + size], profile))
            start += size
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _infer_piece(self, batch: np.ndarray, profile: int) -> np.ndarray:
        torch = self._torch
        n = len(batch)
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            inp, out = self._bind(n, profile)
            inp.copy_(torch.from_numpy(batch))
            if not self.cuda_graph:
                self._enqueue()
            elif n in self._graphs:
                self._graphs[n].replay()
            else:
                self._enqueue()  # warm-up: TensorRT finishes lazy initialisation outside the capture
                self._stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                    self._enqueue()
                self._graphs[n] = graph
                graph.replay()
            result = out.float().cpu()  # ordered after the enqueue on this stream
        self._stream.synchronize()
        return result.numpy()

    def layer_times(self) -> dict[str, float]:
        """Mean milliseconds per layer since loading (requires ``profile=True``)."""
        if not self.profile:
            raise RunnerError("create the runner with profile=True to collect per-layer times")
        self.activate()
        return self._profiler.layer_times()

    def layer_information(self) -> str | None:
        """The engine inspector's JSON for this engine and context (``None`` where it cannot say).

        Full node lists need an engine built with detailed profiling (``build --layers``);
        otherwise TensorRT lists layer names only.
        """
        self.activate()
        inspector = self._engine.create_engine_inspector()
        if inspector is None:
            return None
        inspector.execution_context = self._context
        return inspector.get_engine_information(self._trt.LayerInformationFormat.JSON) or None

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
        self._graphs.clear()
        self._buffers.clear()
        self._bound = None
        self._context = self._engine = self._profiler = self._stream = None
        self._active_profile = 0


def engine_profiles(sidecar: EngineSidecar) -> list[BatchRange]:
    """The batch range of every optimisation profile, in engine order, from the sidecar.

    Sidecars written before several profiles existed have only ``profile``: that one. Reading the
    sidecar checked the shapes, their order included (:class:`acmix_deploy.manifest.EngineProfile`).
    """
    return [BatchRange(p.batch.min, p.batch.opt or p.batch.max, p.batch.max) for p in sidecar.engine_profiles]


def _torch_dtype(torch, trt, dtype):
    mapping = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if hasattr(trt.DataType, "BF16"):
        mapping[trt.DataType.BF16] = torch.bfloat16
    if dtype not in mapping:
        raise RunnerError(f"unsupported engine I/O type {dtype}; export with float32 inputs and outputs")
    return mapping[dtype]


__all__ = [
    "TensorRTRunner",
    "check_engine_compatibility",
    "create_runtime",
    "cuda_device_info",
    "deserialize_engine",
    "engine_profiles",
    "import_tensorrt",
    "trt_major",
]
