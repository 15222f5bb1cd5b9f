"""Our TensorRT code against the real TensorRT Python API of 10.0, the newest 10.x and the newest 11.x, on a CPU.

The committed snapshots (``tests/exporters/tensorrt/api/*.json``, written by
``scripts/trt_api_snapshot.py`` from NVIDIA's compiled bindings) hold every class, member, member
kind, signature and enum value of each release. Every TensorRT attribute our source uses is
collected by reading the source (``tests/exporters/tensorrt/api_uses.py``) and must exist there with
the kind we use it as (called, read, assigned), unless the code feature-detects it.

Where the wheels (package index) and gcc are available, the last tests import the real bindings
over stand-in native libraries and drive our build and run entry points up to their first native
call: each must fail with our one-line error naming the missing GPU/CUDA, never a ``TypeError``
or a wrong "not installed". The wheels and stubs are cached under the temporary directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from tests.exporters.tensorrt import api_uses
from tests.exporters.tensorrt.api_uses import collect, problems, releases, snapshots

REPO = api_uses.REPO
SCRIPTS = REPO / "scripts"
RELEASES = releases()


def _uses(release: str):
    return collect(snapshots()[release])


# -- the snapshots ---------------------------------------------------------------------------------------------
def test_snapshots_hold_the_oldest_10_the_newest_10_and_the_newest_11():
    assert [r.split(".")[:2] for r in RELEASES] == [["10", "0"], ["10", "16"], ["11", "4"]]
    for release in RELEASES:
        api = snapshots()[release]
        assert len(api) > 2000  # the whole module, not the names we use
        assert api["Builder.create_network"]["kind"] == "method"
        assert api["IBuilderConfig.profiling_verbosity"] == {"kind": "property", "settable": True,
                                                              "type": "ProfilingVerbosity"}  # fmt: skip


def test_snapshot_files_name_their_wheel_and_generator():
    for path in sorted(api_uses.SNAPSHOT_DIR.glob("tensorrt-*.json")):
        data = json.loads(path.read_text())
        assert data["format"] == "acmix-deploy.tensorrt-api-snapshot"
        assert data["wheel"].startswith(f"tensorrt_cu12_bindings-{data['tensorrt_version']}-")
        assert len(data["wheel_sha256"]) == 64 and data["generated_by"] == "scripts/trt_api_snapshot.py"
        assert path.name == f"tensorrt-{data['tensorrt_version']}.json"


# -- every attribute we use ------------------------------------------------------------------------------------
def test_the_collector_reaches_the_builder_the_runner_and_their_callbacks():
    """The inference follows objects through our code (so the check below sees what we really call)."""
    uses, overrides = _uses(RELEASES[-1])
    paths = {(u.path, u.how) for u in uses}
    assert ("Builder.build_serialized_network", "call") in paths
    assert ("IBuilderConfig.profiling_verbosity", "store") in paths
    assert ("IExecutionContext.execute_async_v3", "call") in paths  # via self._context in the runner
    assert ("OnnxParser.num_errors", "read") in paths
    assert {(o.base, o.name) for o in overrides} >= {("ILogger", "log"), ("IProfiler", "report_layer_time")}
    sources = {u.where.split(":")[0] for u in uses}
    assert {"runtimes/tensorrt.py", "exporters/tensorrt/config.py", "exporters/tensorrt/plan.py"} <= sources


@pytest.mark.parametrize("release", RELEASES)
def test_every_tensorrt_attribute_we_use_exists_with_its_kind(release):
    uses, _ = _uses(release)
    assert problems(snapshots()[release], uses) == []


def test_feature_detected_attributes_exist_in_some_release():
    """A hasattr() guard for a name no release has is dead code (or a typo)."""
    detected = {u.path for release in RELEASES for u in _uses(release)[0] if u.detected}
    assert detected  # ParserError.node_name, DataType.BF16, IProgressMonitor ...
    for path in detected:
        assert any(path in snapshots()[release] for release in RELEASES), path


@pytest.mark.parametrize("release", RELEASES)
def test_our_callback_classes_implement_the_interfaces(release):
    """TensorRT calls these back by name: each interface method is ours, and ours keep the interface's names."""
    api = snapshots()[release]
    _, overrides = _uses(release)
    ours: dict[str, set[str]] = {}
    for override in overrides:
        ours.setdefault(override.base, set()).add(override.name)
    assert set(ours) == {"ILogger", "IProgressMonitor", "IProfiler"}
    for base, names in ours.items():
        interface = {p.split(".", 1)[1] for p, e in api.items() if p.startswith(f"{base}.") and p.count(".") == 1
                     and e["kind"] == "method" and not p.endswith(".__init__")}  # fmt: skip
        assert interface <= names, f"{base}: TensorRT {release} calls {sorted(interface - names)}, we lack them"


def test_the_check_fails_on_removed_and_misused_attributes(tmp_path):
    """The collector and checker flag what TensorRT 10 removed or what we would use as the wrong kind."""
    source = tmp_path / "old_code.py"
    source.write_text(
        textwrap.dedent(
            """
            from typing import Any

            def build(trt: Any, logger: Any, path: str) -> Any:
                builder = trt.Builder(logger)
                network = builder.create_network(0)
                parser = trt.OnnxParser(network, logger)
                if parser.num_errors():
                    return None
                config = builder.create_builder_config()
                config.max_workspace_size = 1 << 30
                config.num_optimization_profiles = 2
                engine = builder.build_engine(network, config)
                context = engine.create_execution_context()
                context.execute_async_v2([], 0)
                if hasattr(config, "progress_monitor"):
                    config.progress_monitor = None
                return trt.BuilderFlag.STRICT_TYPES
            """
        )
    )
    api = snapshots()[RELEASES[0]]
    found = problems(api, collect(api, [source])[0])
    text = "\n".join(found)
    assert "OnnxParser.num_errors is called but is a property" in text
    assert "IBuilderConfig.max_workspace_size does not exist" in text
    assert "IBuilderConfig.num_optimization_profiles is assigned but is a property without a setter" in text
    assert "Builder.build_engine does not exist" in text
    assert "BuilderFlag.STRICT_TYPES does not exist" in text
    assert "progress_monitor" not in text  # feature-detected
    assert len(found) == 5  # execute_async_v2: its engine came from a removed call, so it is not typed


# -- what import_tensorrt says for each way the package can be broken (real packages on sys.path) ------------
@pytest.mark.parametrize(
    ("init", "says"),
    [
        (
            "import tensorrt_libs_absent_here\n",
            "installed but incomplete: it needs the module 'tensorrt_libs_absent_here'",
        ),
        (
            "raise ImportError('libnvinfer.so.10: cannot open shared object file', name='tensorrt.tensorrt',"
            " path='/site/tensorrt/tensorrt.so')\n",
            "installed but its native libraries do not load (libnvinfer.so.10: cannot open shared object file)",
        ),
        ("import ctypes\nctypes.CDLL('libnvinfer_absent_here.so.10')\n", "its native libraries do not load"),
        ("from os import no_such_name\n", "TensorRT cannot be imported (cannot import name 'no_such_name'"),
    ],
    ids=["half-installed", "loader", "ctypes", "other"],
)
def test_import_tensorrt_names_what_is_broken(tmp_path, monkeypatch, init, says):
    from acmix_deploy.runtimes.base import MissingDependencyError
    from acmix_deploy.runtimes.tensorrt import import_tensorrt

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.py").write_text(init)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    with pytest.raises(MissingDependencyError) as info:
        import_tensorrt()
    message = str(info.value)
    assert says in message and "is not installed" not in message and "\n" not in message


# -- the real bindings over stand-in native libraries ----------------------------------------------------------
def _bindings(release: str):
    """The release's unpacked bindings and stubs (cached), or a skip when wheels or gcc are not available."""
    if sys.platform != "linux" or shutil.which("gcc") is None:
        pytest.skip("needs Linux and gcc to build the stand-in TensorRT libraries")
    sys.path.insert(0, str(SCRIPTS))
    try:
        import trt_api_snapshot
    finally:
        sys.path.remove(str(SCRIPTS))
    try:
        return trt_api_snapshot.prepare(release)
    except trt_api_snapshot.SnapshotError as exc:
        pytest.skip(f"real TensorRT {release} bindings not available here: {exc}")


CHILD = """
import json, sys
sys.path.insert(0, {scripts!r})
import trt_api_snapshot
trt = trt_api_snapshot.load_bindings({site!r}, {stubs!r})
from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.tensorrt import build_engine
from acmix_deploy.exporters.tensorrt.base import no_progress
from acmix_deploy.exporters.tensorrt.engine import compile_plan, prepare_build
from acmix_deploy.exporters.tensorrt.plan import make_logger, make_progress_monitor
from acmix_deploy.exporters.tensorrt.precision_flags import precision_plan
from acmix_deploy.runtimes.tensorrt import TensorRTRunner, create_runtime, import_tensorrt, make_layer_profiler

def outcome(call):
    try:
        call()
    except BaseException as exc:
        return {{"type": type(exc).__name__, "ours": isinstance(exc, AcmixDeployError), "message": str(exc)}}
    return {{"type": None}}

out = {{"version": import_tensorrt().__version__}}
out["build_engine"] = outcome(lambda: build_engine({onnx!r}, {onnx!r} + ".engine"))
request = prepare_build({onnx!r}, {onnx!r} + ".engine")
plan = precision_plan("fp32", trt_version=trt.__version__, onnx_precision="fp32",
                      builder_flags=set(trt.BuilderFlag.__members__),
                      network_flags=set(trt.NetworkDefinitionCreationFlag.__members__))
out["compile_plan"] = outcome(lambda: compile_plan(trt, request, plan, no_progress))
out["create_runtime"] = outcome(lambda: create_runtime(trt, trt.Logger(trt.Logger.WARNING)))
out["runner"] = outcome(lambda: TensorRTRunner({engine!r}).activate())
logger = make_logger(trt)
logger.log(trt.ILogger.Severity.ERROR, "kept")
logger.log(trt.ILogger.Severity.INFO, "not kept")
seen = []
monitor = make_progress_monitor(trt, lambda stage, message: seen.append(message))
monitor.phase_start("Building", None, 3)
monitor.phase_start("inner", "Building", 2)
profiler = make_layer_profiler(trt)
profiler.report_layer_time("conv1", 0.5)
profiler.report_layer_time("conv1", 1.5)
out["callbacks"] = [logger.errors, seen, monitor.step_complete("Building", 1), profiler.layer_times()]
print("RESULT", json.dumps(out))
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("release", RELEASES)
def test_real_bindings_fail_at_the_first_native_call_with_our_error(release, tiny_engine_files):
    bindings = _bindings(release)
    onnx_path, engine = tiny_engine_files
    code = CHILD.format(scripts=str(SCRIPTS), site=str(bindings.site), stubs=str(bindings.stubs),
                        onnx=str(onnx_path), engine=str(engine))  # fmt: skip
    done = _run(code, REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["version"] == release
    for step in ("build_engine", "compile_plan", "create_runtime", "runner"):
        result = out[step]
        assert result["type"] not in (None, "TypeError"), (step, result)
        assert result["ours"], (step, result)
        message = result["message"]
        assert "\n" not in message and "TensorRT is not installed" not in message, (step, message)
        assert "GPU" in message or "CUDA" in message, (step, message)
    assert "no usable CUDA GPU" in out["compile_plan"]["message"]  # the builder's nullptr factory, wrapped
    assert "no usable CUDA GPU" in out["create_runtime"]["message"]  # the runtime's, wrapped
    assert out["callbacks"] == [["kept"], ["Building (3 steps)"], True, {"conv1": 1.0}]


@pytest.mark.parametrize("release", [RELEASES[0], RELEASES[-1]])
def test_real_bindings_without_native_libraries_are_installed_but_broken(release, tmp_path):
    """The loader's ImportError names the library; we must not call that 'not installed'."""
    bindings = _bindings(release)
    shim = tmp_path / "shim" / "tensorrt"
    shim.mkdir(parents=True)
    # What the tensorrt package does: re-export the compiled bindings.
    (shim / "__init__.py").write_text("from tensorrt_bindings import *  # noqa: F403\n")
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(shim.parent)!r}, {str(bindings.site)!r}]
        from acmix_deploy.runtimes.base import MissingDependencyError
        from acmix_deploy.runtimes.tensorrt import import_tensorrt
        try:
            import_tensorrt()
        except MissingDependencyError as exc:
            print("MISSING", exc)
        """
    )
    done = _run(code, REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout.split("MISSING ", 1)[1].strip()
    assert "installed but its native libraries do not load" in message and "is not installed" not in message
    assert f"libnvinfer.so.{bindings.major}" in message or f"libnvonnxparser.so.{bindings.major}" in message
    assert "\n" not in message


@pytest.fixture
def tiny_engine_files(tmp_path):
    """A tiny acmix-deploy ONNX (where to build), and a fake engine file with a real sidecar (what to run)."""
    from tests.exporters.test_tensorrt_build import _sidecar, _tiny_model

    onnx_path = tmp_path / "tiny.onnx"
    onnx.save(_tiny_model(), str(onnx_path))
    engine = tmp_path / "fake.engine"
    engine.write_bytes(b"not a plan")
    (tmp_path / "fake.engine.json").write_text(json.dumps(_sidecar(tmp_path).to_dict()))
    return onnx_path, engine
