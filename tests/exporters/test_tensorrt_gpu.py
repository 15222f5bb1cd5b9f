"""The GPU suite: real TensorRT engines for small and full-size ACmix models, checked against ONNX Runtime.

Run with ``make gpu`` (or ``pytest -m "gpu or tensorrt"``) on a machine with TensorRT and a CUDA
GPU; everywhere else every test here skips with the reason. The small models are the trained
digits checkpoints, so fp16/int8 agreement is measured on real images; the full-size ones
(ACmix-ResNet-50, Swin-T-ACmix at 224 px) have random weights, so there only closeness is
meaningful (cosine), not top-1 agreement.

Criteria (issue #6): fp32 max abs diff <= 1e-3 of the logit scale; fp16 top-1 agreement >= 99%
and cosine >= 0.999; int8 accuracy within 1 point of fp32.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import randomize

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

DEMO = Path(str(resources.files("acmix_deploy").joinpath("data/demo")))
SMALL = {"digits_r26": DEMO / "digits_acmix_resnet26.pth", "digits_swin": DEMO / "digits_acmix_swin.pth"}
FULL = ("acmix_resnet50", "acmix_swin_tiny")
FP32_REL_ATOL = 1e-3
FP16_MIN_COSINE = 0.999
FP16_MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def trt():
    trt = pytest.importorskip(
        "tensorrt", reason="needs the TensorRT Python package (pip install acmix-deploy[tensorrt])"
    )
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return trt


def _major(trt) -> int:
    return int(trt.__version__.split(".")[0])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trt")


@pytest.fixture(scope="module")
def timing_cache(workdir) -> Path:
    return workdir / "timing.cache"  # shared by every build here, as users would


@pytest.fixture(scope="module")
def digits(trt):
    """The held-out digits as uint8 RGB images and labels (real data for agreement checks)."""
    pytest.importorskip("sklearn", reason="the digits ship in scikit-learn")
    from acmix_deploy.datasets import digits_dataset

    images, labels, _ = digits_dataset("test")
    return images, labels


def _fp32_onnx(name: str, workdir: Path) -> Path:
    """Our fp32 export of a small (trained) or full-size (random) model, exported once per module."""
    from acmix_deploy.exporters.onnx import export_onnx
    from acmix_deploy.models import build_model

    path = workdir / f"{name}.onnx"
    if not path.is_file():
        source = SMALL[name] if name in SMALL else randomize(build_model(name), seed=5)
        export_onnx(source, path, max_batch=32, validate_batches=[2])
    return path


def _inputs(name: str, onnx_path: Path, request) -> tuple[np.ndarray, np.ndarray | None]:
    """(preprocessed batch, labels or None): real digits for the small models, seeded noise otherwise."""
    from acmix_deploy import Predictor

    if name in SMALL:
        images, labels = request.getfixturevalue("digits")  # only the small models need scikit-learn
        with Predictor.load(onnx_path) as predictor:
            return predictor.preprocess(list(images)), labels
    return np.random.default_rng(7).standard_normal((40, 3, 224, 224), dtype=np.float32), None


def _ort_logits(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path) as runner:
        return runner.infer(x)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _build(src: Path, precision: str, cache: Path, **profile):
    from acmix_deploy.exporters.tensorrt import build_engine

    engine = src.with_name(f"{src.stem}.{precision}.engine")
    profile = {"min_batch": 1, "opt_batch": 8, "max_batch": 32, **profile}
    build_engine(src, engine, precision=precision, timing_cache=cache, force=True, progress=print, **profile)
    return engine


def _trt_logits(engine: Path, x: np.ndarray, **options) -> np.ndarray:
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    with TensorRTRunner(engine, **options) as runner:
        return runner.infer(x)


MODELS = [
    *SMALL,
    *(pytest.param(name, marks=pytest.mark.slow) for name in FULL),
]


@pytest.mark.parametrize("name", MODELS)
def test_fp32_engine_matches_onnxruntime(trt, name, workdir, timing_cache, request):
    onnx_path = _fp32_onnx(name, workdir)
    x, _ = _inputs(name, onnx_path, request)
    engine = _build(onnx_path, "fp32", timing_cache)
    ref, got = _ort_logits(onnx_path, x), _trt_logits(engine, x)
    scale = max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(ref - got).max())
    print(f"{name} fp32 engine vs ORT: max|diff| {diff:.3g} (scale {scale:.2f}) over {len(x)} inputs")
    assert diff <= FP32_REL_ATOL * scale
    assert (ref.argmax(1) == got.argmax(1)).mean() >= FP16_MIN_AGREEMENT  # near-ties may flip at 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_fp16_engine_from_the_mixed_precision_onnx(trt, name, workdir, timing_cache, request):
    """The form both TensorRT 10 (strongly typed) and 11 (always strongly typed) build."""
    from acmix_deploy.exporters.precision import to_fp16

    onnx_path = _fp32_onnx(name, workdir)
    mixed = workdir / f"{name}.fp16.onnx"
    if not mixed.is_file():
        to_fp16(onnx_path, mixed)
    x, labels = _inputs(name, onnx_path, request)
    engine = _build(mixed, "fp16", timing_cache)
    ref, got = _ort_logits(onnx_path, x), _trt_logits(engine, x)
    cosine = float(_cosine(ref, got).min())
    agreement = float((ref.argmax(1) == got.argmax(1)).mean())
    print(f"{name} fp16 engine vs ORT fp32: cosine min {cosine:.5f}, top-1 agreement {agreement:.2%}")
    assert cosine >= FP16_MIN_COSINE
    if labels is not None:  # random weights make top-1 a coin toss between near-equal logits
        assert agreement >= FP16_MIN_AGREEMENT
        drop = (ref.argmax(1) == labels).mean() - (got.argmax(1) == labels).mean()
        assert drop <= max(0.001, 1.0 / len(labels)) + 1e-9  # 0.1 point, or one image of the 359


def test_fp16_builder_flag_on_an_fp32_onnx(trt, workdir, timing_cache, request):
    """TensorRT 10 offers the FP16 flag (weak typing); TensorRT 11 removed it and we say so."""
    from acmix_deploy.exporters.tensorrt import BuildError

    onnx_path = _fp32_onnx("digits_r26", workdir)
    if _major(trt) >= 11:
        with pytest.raises(BuildError, match="FP16 must come from the ONNX"):
            _build(onnx_path, "fp16", timing_cache)
        return
    engine = _build(onnx_path, "fp16", timing_cache)
    x, _ = _inputs("digits_r26", onnx_path, request)
    ref, got = _ort_logits(onnx_path, x), _trt_logits(engine, x)
    assert float(_cosine(ref, got).min()) >= FP16_MIN_COSINE
    assert float((ref.argmax(1) == got.argmax(1)).mean()) >= FP16_MIN_AGREEMENT


def test_int8_engine_from_qdq_onnx_keeps_accuracy(trt, workdir, timing_cache, request):
    pytest.importorskip("sklearn")
    from acmix_deploy.datasets import write_digits_folder
    from acmix_deploy.exporters.precision import to_int8

    onnx_path = _fp32_onnx("digits_r26", workdir)
    qdq = workdir / "digits_r26.int8.onnx"
    if not qdq.is_file():
        calib = write_digits_folder(workdir / "calib", split="train")
        to_int8(onnx_path, qdq, calibration=calib, samples=256, target="tensorrt")
    engine = _build(qdq, "int8", timing_cache)
    x, labels = _inputs("digits_r26", onnx_path, request)
    fp32_top1 = float((_ort_logits(onnx_path, x).argmax(1) == labels).mean())
    int8_top1 = float((_trt_logits(engine, x).argmax(1) == labels).mean())
    print(f"digits_r26 int8 engine: top-1 {int8_top1:.2%} vs fp32 {fp32_top1:.2%}")
    assert fp32_top1 - int8_top1 <= 0.01


def test_dynamic_batch_cuda_graphs_and_profiler(trt, workdir, timing_cache, request):
    from acmix_deploy.runtimes.base import RunnerError
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    onnx_path = _fp32_onnx("digits_r26", workdir)
    engine = _build(onnx_path, "fp32", timing_cache, min_batch=1, opt_batch=4, max_batch=8)
    x, _ = _inputs("digits_r26", onnx_path, request)
    ref = _ort_logits(onnx_path, x[:11])
    scale = max(1.0, float(np.abs(ref).max()))
    with TensorRTRunner(engine) as runner:
        assert runner.batch_limits == (1, 8)
        for n in (1, 3, 8, 11):  # 11 > max: split into 8 + 3
            assert np.abs(runner.infer(x[:n]) - ref[:n]).max() <= FP32_REL_ATOL * scale
    with TensorRTRunner(engine, cuda_graph=True) as runner:
        first = runner.infer(x[:8])  # captures
        again = runner.infer(x[:8])  # replays
        np.testing.assert_array_equal(first, again)
        assert np.abs(first - ref[:8]).max() <= FP32_REL_ATOL * scale
    with TensorRTRunner(engine, profile=True) as runner:
        runner.infer(x[:2])
        times = runner.layer_times()
    assert times and all(t >= 0 for t in times.values())
    with pytest.raises(RunnerError, match="exclude each other"):
        TensorRTRunner(engine, profile=True, cuda_graph=True)


def test_engine_is_a_plain_plan_and_mismatches_are_refused(trt, workdir, timing_cache):
    from acmix_deploy.manifest import ManifestError, read_engine_sidecar, sidecar_path
    from acmix_deploy.runtimes.base import RunnerError
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    engine = _build(_fp32_onnx("digits_r26", workdir), "fp32", timing_cache)
    plain = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine.read_bytes())
    assert plain is not None, "other tools (trtexec, Triton) must load the file as is"
    typed = read_engine_sidecar(engine)
    assert typed.tensorrt_version == trt.__version__ and typed.onnx_sha256 and typed.batch.max == 32
    sidecar = json.loads(sidecar_path(engine).read_text())
    sidecar_path(engine).write_text(json.dumps(sidecar)[:-40])  # truncated: a one-line error, not a traceback
    with pytest.raises(ManifestError, match="engine sidecar is not valid JSON") as info:
        TensorRTRunner(engine).activate()
    assert "\n" not in str(info.value)
    for change, match in (
        ({"tensorrt": {"version": "9.0.0"}}, "rebuild"),
        ({"gpu": {**sidecar["gpu"], "name": "Some Other GPU"}}, "rebuild"),
    ):
        sidecar_path(engine).write_text(json.dumps({**sidecar, **change}))
        with pytest.raises(RunnerError, match=match):
            TensorRTRunner(engine).activate()
    sidecar_path(engine).write_text(json.dumps(sidecar))
    with TensorRTRunner(engine) as runner:
        assert runner.manifest.num_classes == 10


def test_several_profiles_serve_every_batch_on_the_profile_that_holds_it(trt, workdir, timing_cache, request):
    """1:1:4 and 8:16:32: the runner switches profiles per batch and splits batches in the gap (5..7)."""
    from acmix_deploy.exporters.tensorrt import build_engine
    from acmix_deploy.manifest import read_manifest
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner, engine_profiles

    onnx_path = _fp32_onnx("digits_r26", workdir)
    engine = workdir / "digits_r26.profiles.engine"
    report = build_engine(onnx_path, engine, profiles=["1:1:4", "8:16:32"], timing_cache=timing_cache, force=True)
    assert any("5..7 fall between" in w for w in report.warnings)
    assert read_manifest(engine).batch.max == 4  # what Triton is told: no batch a profile lacks
    x, _ = _inputs("digits_r26", onnx_path, request)
    ref = _ort_logits(onnx_path, x[:40])
    scale = max(1.0, float(np.abs(ref).max()))
    with TensorRTRunner(engine) as runner:
        assert runner.batch_limits == (1, 32) and len(engine_profiles(runner.sidecar)) == 2
        assert runner._engine.num_optimization_profiles == 2
        for n in (1, 4, 6, 8, 16, 32, 40, 3):  # 6 = 4 + 2, 40 = 32 + 8; back to profile 0 at the end
            assert np.abs(runner.infer(x[:n]) - ref[:n]).max() <= FP32_REL_ATOL * scale, n
    with TensorRTRunner(engine, cuda_graph=True) as runner:
        for n in (2, 16, 2):
            assert np.abs(runner.infer(x[:n]) - ref[:n]).max() <= FP32_REL_ATOL * scale, n


@pytest.mark.parametrize("hardware", ["ampere-plus", "same-compute-capability"])
def test_portable_engines_record_and_load(trt, workdir, timing_cache, request, hardware):
    """Version-compatible + hardware-compatible builds run here and say so in the sidecar (other GPUs/releases:
    the rules are unit-tested on CPU; moving an engine between machines is not tested here)."""
    from acmix_deploy.exporters.tensorrt import BuildError, build_engine
    from acmix_deploy.manifest import read_engine_sidecar
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    torch = pytest.importorskip("torch")
    if hardware == "ampere-plus" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("ampere-plus engines are built on Ampere or newer GPUs")
    onnx_path = _fp32_onnx("digits_r26", workdir)
    engine = workdir / f"digits_r26.{hardware}.engine"
    try:
        build_engine(onnx_path, engine, version_compatible=True, hardware_compatibility=hardware,
                     max_batch=8, timing_cache=timing_cache, force=True)  # fmt: skip
    except BuildError as exc:
        if "has no same-compute-capability" in str(exc):
            pytest.skip(str(exc))  # TensorRT 10.0 lacks that level
        raise
    builder = read_engine_sidecar(engine).builder
    assert builder["version_compatible"] and builder["hardware_compatibility"] == hardware
    x, _ = _inputs("digits_r26", onnx_path, request)
    ref = _ort_logits(onnx_path, x[:8])
    with TensorRTRunner(engine) as runner:  # engine_host_code_allowed is set for the embedded lean runtime
        assert np.abs(runner.infer(x[:8]) - ref).max() <= FP32_REL_ATOL * max(1.0, float(np.abs(ref).max()))


def test_profile_engine_folds_layer_times_onto_blocks_and_branches(trt, workdir, timing_cache):
    from acmix_deploy.exporters.tensorrt import build_engine
    from acmix_deploy.profiling.engine_layers import profile_engine

    engine = workdir / "digits_r26.layers.engine"
    build_engine(_fp32_onnx("digits_r26", workdir), engine, inspector_json=True, max_batch=8,
                 timing_cache=timing_cache, force=True)  # fmt: skip
    result = profile_engine(engine, iterations=3, batch=2)
    print(result.table())
    attributed = {branch for split in result.branches.values() for branch in split}
    assert attributed & {"attention", "convolution", "projection"}, attributed  # ACmix branches reached
    assert abs(sum(sum(s.values()) for s in result.branches.values()) - result.total_ms) < 1e-6
