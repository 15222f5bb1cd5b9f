"""TensorRT engine building and running: pure parts on CPU, real builds where TensorRT and a GPU exist."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from acmix_deploy.exporters.tensorrt import (
    BuildError,
    ProfileShapes,
    build_engine,
    compute_profile,
    format_parser_errors,
    layers_path,
    make_engine_sidecar,
    precision_plan,
    read_onnx_manifest,
)
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import MANIFEST_KEY, BatchSpec, EngineSidecar, Manifest, ManifestError, Preprocessing
from acmix_deploy.runtimes.base import MissingDependencyError, RunnerError
from acmix_deploy.runtimes.tensorrt import TensorRTRunner, check_engine_compatibility
from tests.exporters.tensorrt.api_uses import enum_values, releases

REPO = Path(__file__).resolve().parents[2]
HINT = "pip install 'acmix-deploy[tensorrt]'"
# The flag enums of the real bindings (oldest 10.x and newest 11.x snapshotted), not hand-picked names.
TRT10_FLAGS = set(enum_values(releases(10)[0], "BuilderFlag"))
TRT10_NET = set(enum_values(releases(10)[0], "NetworkDefinitionCreationFlag"))
TRT11_FLAGS = set(enum_values(releases(11)[-1], "BuilderFlag"))
TRT11_NET = set(enum_values(releases(11)[-1], "NetworkDefinitionCreationFlag"))


def _manifest(**kw) -> Manifest:
    base = dict(
        family="acmix_resnet",
        hparams={"num_classes": 10},
        img_size=8,
        num_classes=10,
        preprocessing=Preprocessing.evaluation(8),  # ACmix-ResNet: bilinear
        batch=BatchSpec(min=1, max=8),
        opset=20,
    )
    base.update(kw)
    return Manifest(**base)


def _tiny_model() -> onnx.ModelProto:
    """A tiny classifier ONNX with an acmix-deploy manifest in its metadata (no torch export needed)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    entry = model.metadata_props.add()
    entry.key, entry.value = MANIFEST_KEY, _manifest().to_json()
    return model


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    """:func:`_tiny_model`, saved."""
    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny_model(), str(path))
    return path


# -- missing tensorrt ----------------------------------------------------------------------------
def test_build_without_tensorrt_names_the_extra(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        build_engine(tiny_onnx, tmp_path / "tiny.engine")
    message = str(info.value)
    assert HINT in message and "\n" not in message
    assert not (tmp_path / "tiny.engine").exists()


def test_runner_without_tensorrt_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match=r"acmix-deploy\[tensorrt\]"):
        TensorRTRunner(tmp_path / "x.engine").activate()


def test_modules_import_without_tensorrt_in_a_clean_interpreter(tiny_onnx, tmp_path):
    """A meta-path finder blocks tensorrt; the modules import, and building fails with the hint."""
    code = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "tensorrt" or name.startswith("tensorrt."):
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        import acmix_deploy.exporters.tensorrt, acmix_deploy.runtimes.tensorrt
        assert "tensorrt" not in sys.modules
        from acmix_deploy.runtimes.base import MissingDependencyError
        try:
            acmix_deploy.exporters.tensorrt.build_engine({str(tiny_onnx)!r}, {str(tmp_path / "t.engine")!r})
        except MissingDependencyError as exc:
            print("MISSING:", exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MISSING:" in result.stdout and HINT in result.stdout


# -- checks before any TensorRT work -------------------------------------------------------------
def test_existing_engine_is_not_overwritten(tiny_onnx, tmp_path):
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        build_engine(tiny_onnx, engine)
    assert engine.read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp8"}, "unknown precision"),
        ({"workspace_gb": 0}, "workspace"),
        ({"builder_optimization_level": 9}, "0..5"),
        ({"max_batch": 64}, "outside what the ONNX was validated"),
        ({"min_batch": 4, "opt_batch": 2}, "min <= opt <= max"),
    ],
)
def test_bad_arguments_fail_before_tensorrt(tiny_onnx, tmp_path, monkeypatch, kwargs, match):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # proves the error comes first
    with pytest.raises(BuildError, match=match):
        build_engine(tiny_onnx, tmp_path / "tiny.engine", **kwargs)


def test_onnx_without_manifest_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "bare.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(BuildError, match="manifest"):
        read_onnx_manifest(path)


def test_read_onnx_manifest(tiny_onnx):
    manifest, name, shape, _ = read_onnx_manifest(tiny_onnx)
    assert (name, shape, manifest.batch.max) == ("input", ["batch", 3, 8, 8], 8)


# -- profile -------------------------------------------------------------------------------------
def test_profile_defaults_to_manifest_range():
    p = compute_profile("input", ["batch", 3, 64, 64], BatchSpec(dynamic=True, min=1, max=32))
    assert p == ProfileShapes("input", (1, 3, 64, 64), (32, 3, 64, 64), (32, 3, 64, 64))
    assert not p.fixed


def test_profile_explicit_values():
    p = compute_profile("input", ["batch", 3, 8, 8], BatchSpec(min=1, max=32), min_batch=2, opt_batch=4, max_batch=16)
    assert (p.min[0], p.opt[0], p.max[0]) == (2, 4, 16)
    assert p.to_dict() == {"input": "input", "min": [2, 3, 8, 8], "opt": [4, 3, 8, 8], "max": [16, 3, 8, 8]}


def test_profile_fixed_batch():
    p = compute_profile("input", [4, 3, 8, 8], BatchSpec(dynamic=False, min=4, max=4))
    assert p.fixed and p.opt == (4, 3, 8, 8)
    with pytest.raises(BuildError, match="fixed batch of 4"):
        compute_profile("input", [4, 3, 8, 8], BatchSpec(min=4, max=4), max_batch=8)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        (["batch", 3, "h", 8], {}, "only the batch axis"),
        (["batch", 3, 8, 8], {"max_batch": 33}, "outside"),
        (["batch", 3, 8, 8], {"min_batch": 0}, ">= 1"),
        (["batch", 3, 8, 8], {"opt_batch": 40, "max_batch": 8}, "min <= opt <= max"),
        ([7], {}, "rank"),
    ],
)
def test_profile_errors(shape, kwargs, match):
    with pytest.raises(BuildError, match=match):
        compute_profile("input", shape, BatchSpec(min=1, max=32), **kwargs)


# -- precision -----------------------------------------------------------------------------------
def test_precision_fp32_disables_tf32():
    plan = precision_plan("fp32", trt_version="10.9.0", onnx_precision="fp32", builder_flags=TRT10_FLAGS,
                          network_flags=TRT10_NET)  # fmt: skip
    assert plan.builder_flags == () and plan.clear_flags == ("TF32",) and not plan.strongly_typed


def test_precision_fp16_trt10_uses_flag_on_fp32_onnx():
    plan = precision_plan("fp16", trt_version="10.9.0", onnx_precision="fp32", builder_flags=TRT10_FLAGS,
                          network_flags=TRT10_NET)  # fmt: skip
    assert plan.builder_flags == ("FP16",)


def test_precision_fp16_onnx_is_strongly_typed_on_trt10():
    plan = precision_plan("fp16", trt_version="10.12.0", onnx_precision="fp16", builder_flags=TRT10_FLAGS,
                          network_flags=TRT10_NET)  # fmt: skip
    assert plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()


def test_precision_fp16_trt11_needs_fp16_onnx():
    with pytest.raises(BuildError, match="no FP16 builder flag"):
        precision_plan("fp16", trt_version="11.3.0", onnx_precision="fp32", builder_flags=TRT11_FLAGS,
                       network_flags=TRT11_NET)  # fmt: skip
    plan = precision_plan("fp16", trt_version="11.3.0", onnx_precision="mixed", builder_flags=TRT11_FLAGS,
                          network_flags=TRT11_NET)  # fmt: skip
    assert plan.strongly_typed and plan.builder_flags == () and plan.network_flags == ()


@pytest.mark.parametrize(
    ("version", "flags", "net"), [("10.9.0", TRT10_FLAGS, TRT10_NET), ("11.3.0", TRT11_FLAGS, TRT11_NET)]
)
def test_precision_int8_needs_qdq_onnx(version, flags, net):
    with pytest.raises(BuildError, match="Q/DQ"):
        precision_plan("int8", trt_version=version, onnx_precision="fp32", builder_flags=flags, network_flags=net)
    plan = precision_plan("int8", trt_version=version, onnx_precision="int8", builder_flags=flags, network_flags=net)
    assert plan.builder_flags == () and plan.strongly_typed  # never INT8/FP16 builder flags: Q/DQ + strong typing


def test_precision_without_strongly_typed_is_refused_not_weakly_typed():
    """Every 10.x has STRONGLY_TYPED; a TensorRT without it is older than we support (no weak-typing fallback)."""
    for precision, onnx_precision in (("int8", "int8"), ("fp16", "fp16")):
        with pytest.raises(BuildError, match=r"no STRONGLY_TYPED network flag; TensorRT 10\.0 or later"):
            precision_plan(precision, trt_version="9.3.0", onnx_precision=onnx_precision, builder_flags=TRT10_FLAGS,
                           network_flags={"EXPLICIT_BATCH"})  # fmt: skip


def test_precision_int8_on_trt10_is_strongly_typed_when_offered():
    """Kept-in-float layers must stay float: no FP16 flag may re-decide them."""
    plan = precision_plan("int8", trt_version="10.9.0", onnx_precision="int8", builder_flags=TRT10_FLAGS,
                          network_flags=TRT10_NET)  # fmt: skip
    assert plan.strongly_typed and plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()


def test_precision_fp32_refuses_typed_onnx():
    with pytest.raises(BuildError, match="--fp16"):
        precision_plan("fp32", trt_version="10.9.0", onnx_precision="fp16", builder_flags=TRT10_FLAGS,
                       network_flags=TRT10_NET)  # fmt: skip


# -- parser errors, sidecar, compatibility -------------------------------------------------------
def test_parser_errors_name_their_nodes():
    err = SimpleNamespace(
        node=lambda: 7,
        node_name=lambda: "/layer1/Pad",
        node_operator=lambda: "Pad",
        code=lambda: "UNSUPPORTED_NODE",
        desc=lambda: "pads must be an initializer",
    )
    old = SimpleNamespace(node=lambda: 2, code=lambda: "INVALID_NODE", desc=lambda: "bad")
    text = format_parser_errors([err, old])
    assert "node 7 '/layer1/Pad' (Pad): UNSUPPORTED_NODE: pads must be an initializer" in text
    assert "[1] node 2: INVALID_NODE: bad" in text


def _sidecar(tmp_path, **profile_kw) -> EngineSidecar:
    profile = compute_profile("input", ["batch", 3, 8, 8], BatchSpec(min=1, max=8), **profile_kw)
    onnx_path = tmp_path / "m.onnx"
    return make_engine_sidecar(
        manifest=_manifest(),
        onnx_path=onnx_path,
        onnx_sha256="ab" * 32,
        profile=profile,
        precision="fp16",
        trt_version="10.9.0.34",
        gpu={"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda": "12.8"},
        build_seconds=12.3456,
        builder={"workspace_gb": 4.0},
    )


def test_sidecar_round_trip(tmp_path):
    built = _sidecar(tmp_path, max_batch=4)
    data = json.loads(json.dumps(built.to_dict()))
    assert data["onnx"] == {"file": "m.onnx", "sha256": "ab" * 32} and data["build_seconds"] == 12.346
    assert data["manifest"]["precision"] == "fp32"  # the ONNX's own manifest, unchanged
    sidecar = EngineSidecar.from_dict(data)
    assert sidecar == built
    manifest = sidecar.served_manifest()
    assert manifest.precision == "fp16" and manifest.batch.to_dict() == {"dynamic": True, "min": 1, "max": 4, "opt": 4}
    check_engine_compatibility(sidecar, "10.9.0.34", "NVIDIA H100 80GB HBM3", "9.0")


def test_sidecar_fixed_profile(tmp_path):
    sidecar = _sidecar(tmp_path, min_batch=4, opt_batch=4, max_batch=4)
    assert sidecar.served_manifest().batch.to_dict() == {"dynamic": False, "min": 4, "max": 4, "opt": 4}


@pytest.mark.parametrize(
    ("version", "name", "cc", "match"),
    [
        ("10.13.0.1", "NVIDIA H100 80GB HBM3", "9.0", "TensorRT 10.9.0.34, running 10.13.0.1"),
        ("10.9.0.34", "NVIDIA A100-SXM4-80GB", "8.0", "compute capability 9.0"),
        ("10.9.0.34", "NVIDIA H200", "9.0", "GPU 'NVIDIA H100 80GB HBM3'"),
    ],
)
def test_compatibility_mismatch_is_refused(tmp_path, version, name, cc, match):
    with pytest.raises(RunnerError, match=match) as info:
        check_engine_compatibility(_sidecar(tmp_path), version, name, cc)
    assert "rebuild" in str(info.value)


def test_compatibility_needs_a_real_sidecar():
    with pytest.raises(ManifestError, match="not an acmix-deploy"):
        EngineSidecar.from_dict({"precision": "fp32"})
    with pytest.raises(ManifestError, match="lacks"):
        EngineSidecar.from_dict({"format": "acmix-deploy.tensorrt-engine", "format_version": 1})


def test_layers_path():
    assert layers_path("out/m.engine") == Path("out/m.engine.layers.json")


# Real builds (GPU + TensorRT) live in test_tensorrt_gpu.py.
