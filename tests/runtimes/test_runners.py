"""Runners over real backends: torch and ONNX Runtime agree; batching, limits and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from acmix_deploy.runtimes import BACKENDS, RunnerError, backend_for, open_runner
from acmix_deploy.runtimes.base import MissingDependencyError


def batch_of(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size), dtype=np.float32)


def test_backend_by_suffix():
    assert backend_for("m.onnx") == "onnxruntime"
    assert backend_for("m.pth.tar") == backend_for("m.safetensors") == backend_for("m.pt") == "torch"
    assert backend_for("m.engine") == backend_for("m.plan") == "tensorrt"
    with pytest.raises(RunnerError, match="suffix"):
        backend_for("m.bin2")
    # Every listed backend is one open_runner builds (lazily: nothing is loaded) and a suffix leads to;
    # an unknown one is refused with the list.
    assert [open_runner("m.any", backend=name).backend for name in BACKENDS] == list(BACKENDS)
    assert {backend_for(p) for p in ("m.onnx", "m.pt", "m.plan")} == set(BACKENDS)
    with pytest.raises(RunnerError, match=", ".join(BACKENDS)):
        open_runner("m.onnx", backend="tflite")


def test_torch_and_onnxruntime_agree_with_the_model(small_artifacts):
    x = batch_of(3)
    with torch.no_grad():
        expected = small_artifacts["model"](torch.from_numpy(x)).numpy()
    for path, opts in [
        (small_artifacts["onnx"], {}),
        (small_artifacts["checkpoint"], {"img_size": 64}),
        (small_artifacts["checkpoint"], {"img_size": 64, "rewrite": False}),
    ]:
        with open_runner(path, **opts) as runner:
            out = runner.infer(x)
            assert runner.manifest.num_classes == 10 and runner.manifest.img_size == 64
        assert np.abs(out - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_large_batches_are_split_within_limits(small_artifacts):
    with open_runner(small_artifacts["onnx"]) as runner:
        assert runner.batch_limits == (1, 8)
        x = batch_of(19, seed=3)
        whole = runner.infer(x)
        parts = np.concatenate([runner.infer(x[i : i + 1]) for i in range(19)])
    assert whole.shape == (19, 10)
    assert np.abs(whole - parts).max() < 1e-5


def test_fixed_batch_artifact_pads_the_last_chunk(small_artifacts, tmp_path):
    from acmix_deploy.exporters.onnx import export_onnx

    path = tmp_path / "fixed4.onnx"
    export_onnx(small_artifacts["model"], path, img_size=64, batch=4)
    x = batch_of(6, seed=5)
    with open_runner(path) as fixed, open_runner(small_artifacts["onnx"]) as dynamic:
        assert np.abs(fixed.infer(x) - dynamic.infer(x)).max() < 1e-5


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 64, 64), np.float32), "expected a"),
        (np.zeros((1, 4, 64, 64), np.float32), "expected a"),
        (np.zeros((1, 3, 32, 32), np.float32), "expected a"),
        (np.zeros((1, 3, 64, 64), np.int64), "float"),
    ],
)
def test_bad_arrays_are_refused(small_artifacts, array, message):
    with open_runner(small_artifacts["onnx"]) as runner, pytest.raises(RunnerError, match=message):
        runner.infer(array)


def test_generic_onnx_without_manifest_is_served_with_a_warning(small_artifacts, tmp_path):
    proto = onnx.load(small_artifacts["onnx"])
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    with pytest.warns(UserWarning, match="generic classifier"), open_runner(bare) as runner:
        assert runner.manifest.family == "generic" and runner.manifest.num_classes == 10
        assert runner.infer(batch_of(2)).shape == (2, 10)


def test_bad_files(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(RunnerError, match="cannot load"):
        open_runner(tmp_path / "junk.onnx").activate()
    with pytest.raises(RunnerError, match="no such file"):
        open_runner(tmp_path / "missing.onnx").activate()
    with pytest.raises(RunnerError, match="unknown onnxruntime device"):
        open_runner(tmp_path / "junk.onnx", device="tpu")


def test_tensorrt_backend_names_what_to_install(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"acmix-deploy\[tensorrt\]"):
            open_runner(tmp_path / "model.engine").activate()
    else:  # pragma: no cover - only where TensorRT is installed
        pytest.skip("TensorRT is installed here")


def test_runtimes_import_no_heavy_backend():
    code = "import sys, runtimes; print(any(m in sys.modules for m in ('onnxruntime', 'tensorrt')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_cuda_runner_with_phase_timing(small_artifacts):
    from acmix_deploy.profiling.benchmark import benchmark

    x = batch_of(2)
    with (
        open_runner(small_artifacts["checkpoint"], img_size=64) as cpu,
        open_runner(small_artifacts["checkpoint"], img_size=64, device="cuda") as gpu,
    ):
        assert np.abs(cpu.infer(x) - gpu.infer(x)).max() < 1e-3
        out, phases = gpu.infer_phases(x)
        assert out.shape == (2, 10) and set(phases) == {"h2d_ms", "compute_ms", "d2h_ms"}
        result = benchmark([gpu], batches=[1, 4], warmup=1, iterations=3)
        assert all(row.cuda_phases_ms for row in result.rows)


def test_a_closed_runner_answers_its_manifest_without_loading_again(tmp_path, monkeypatch):
    """Callers read manifests after the ``with`` block (reports, saved outputs): that must not reload."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor("w", TensorProto.FLOAT, [192, 10], np.zeros(1920, np.float32))],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    loads = []
    real = OnnxRuntimeRunner._load
    monkeypatch.setattr(OnnxRuntimeRunner, "_load", lambda self: loads.append(1) or real(self))
    with open_runner(path) as runner:
        runner.infer(np.zeros((1, 3, 8, 8), np.float32))
    assert runner.manifest.num_classes == 10 and len(loads) == 1
    runner.infer(np.zeros((1, 3, 8, 8), np.float32))  # running again after close loads again, as before
    assert len(loads) == 2
