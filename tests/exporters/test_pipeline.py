"""The export pipeline as a library call: planning, refusals before any work, variants, and cleanup."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acmix_deploy.exporters import pipeline
from acmix_deploy.exporters.pipeline import (
    ExportOptionsError,
    Int8Settings,
    OnnxSettings,
    artifact_stem,
    plan_export,
    remove_intermediates,
)
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import read_manifest, sidecar_path


def test_vocabulary_is_what_the_converters_accept():
    from acmix_deploy.exporters import onnx, precision, tensorrt

    assert pipeline.PRECISIONS == tensorrt.PRECISIONS
    assert pipeline.CALIBRATION_METHODS == precision.CALIBRATION_METHODS
    assert set(pipeline.INT8_TARGETS) == {*precision.INT8_TARGETS, "cpu-dynamic"}
    assert (pipeline.DEFAULT_OPSET, pipeline.MIN_OPSET) == (onnx.DEFAULT_OPSET, onnx.MIN_OPSET)


def test_package_reexports_the_pipeline_lazily():
    code = (
        "import sys, acmix_deploy.exporters as e\n"
        "assert 'acmix_deploy.exporters.pipeline' not in sys.modules\n"
        "from acmix_deploy.exporters import pipeline\n"
        "assert e.export is pipeline.export and e.ExportReport is pipeline.ExportReport\n"
        "heavy = sorted({'torch', 'onnx', 'onnxruntime'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_plan_names_every_output_before_any_work(tmp_path):
    plan = plan_export(tmp_path / "r50.pth.tar", precision="fp32,int8,fp16", format="engine", int8=_trt_int8())
    assert artifact_stem("r50.pth.tar") == "r50" and plan.onnx == tmp_path / "r50.onnx"
    assert list(plan.variants) == ["int8", "fp16"]  # the order asked for
    assert plan.engines["fp16"] == (tmp_path / "r50.fp16.onnx", tmp_path / "r50.fp16.engine")
    names = sorted(p.name for p in plan.outputs())
    assert names == sorted(
        f"r50{mid}{ext}" for mid in ("", ".int8", ".fp16") for ext in (".onnx", ".onnx.json", ".engine", ".engine.json")
    )
    assert sorted(p.name for p in plan.intermediates()) == sorted(n for n in names if ".onnx" in n)
    assert plan_export(tmp_path / "r50.pth", precision=("fp16",)).engines == {}  # format onnx: no engines
    assert not list(tmp_path.iterdir())


def _trt_int8() -> Int8Settings:
    return Int8Settings(target="tensorrt", calibration=Path("calib"))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"precision": "bf16"}, "--precision"),
        ({"precision": ""}, "--precision"),
        ({"format": "tflite"}, "--format"),
        ({"onnx": OnnxSettings(batch=0)}, "--batch"),
        ({"onnx": OnnxSettings(max_batch=0)}, "--max-batch"),
        ({"onnx": OnnxSettings(opset=16)}, "--opset"),
        ({"precision": "fp16", "onnx": OnnxSettings(batch=4)}, "dynamic-batch"),
        ({"precision": "int8"}, "--calib"),
        ({"precision": "int8", "int8": Int8Settings(method="mse", calibration=Path("c"))}, "--calib-method"),
        ({"precision": "int8", "int8": Int8Settings(samples=0, calibration=Path("c"))}, "--calib-samples"),
        ({"precision": "int8", "format": "all", "int8": Int8Settings(calibration=Path("c"))}, "--int8-target tensorrt"),
    ],
)
def test_bad_or_contradicting_options_are_usage_errors(tmp_path, kwargs, fragment):
    with pytest.raises(ExportOptionsError, match=fragment.replace("-", r"\-")) as info:
        pipeline.export(tmp_path / "missing.pth", **kwargs)
    assert isinstance(info.value, ValueError)  # a usage error: the CLI exits 2


def test_refuses_clobbering_before_any_work(small_artifacts, tmp_path):
    (tmp_path / "small.fp16.onnx.json").write_text("mine")  # only a variant's sidecar exists
    with pytest.raises(OutputExistsError, match=re.escape("small.fp16.onnx.json")):
        pipeline.export(small_artifacts["checkpoint"], tmp_path, precision="fp32,fp16", onnx=OnnxSettings(img_size=64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.fp16.onnx.json"]


@pytest.fixture(scope="module")
def exported(small_artifacts, tmp_path_factory):
    """fp32 + fp16 through the library call, as ``export --precision fp32,fp16`` makes them."""
    out = tmp_path_factory.mktemp("pipeline")
    stages = []
    report = pipeline.export(
        small_artifacts["checkpoint"],
        out,
        name="r26",
        precision=["fp32", "fp16"],
        onnx=OnnxSettings(img_size=64, measure_latency=False, labels=tuple(f"c{i}" for i in range(10))),
        progress=lambda stage, message: stages.append(stage),
    )
    return out, report, stages


def test_export_writes_fp32_and_variants_and_reports_what_it_left(exported):
    out, report, stages = exported
    assert stages[:1] == ["load"] and "fp16" in stages
    assert sorted(p.name for p in out.iterdir()) == ["r26.fp16.onnx", "r26.fp16.onnx.json", "r26.onnx", "r26.onnx.json"]
    assert read_manifest(out / "r26.fp16.onnx").precision == "mixed"
    assert read_manifest(out / "r26.fp16.onnx").labels == [f"c{i}" for i in range(10)]
    data = json.loads(json.dumps(report.to_dict()))
    assert sorted(Path(p).name for p in data["artifacts"]) == sorted(p.name for p in out.iterdir())
    assert data["path"] == str(out / "r26.onnx") and data["variants"][0]["path"] == str(out / "r26.fp16.onnx")
    assert data["engines"] == [] and data["intermediates_removed"] == 0
    assert dict(report.summary())["artifact"].startswith(str(out / "r26.onnx"))


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_engine_format_removes_every_intermediate_and_names_only_what_is_left(exported, tmp_path):
    """`--format engine`: each ONNX this run wrote goes with its sidecar; the report names no file that is gone.

    The engines themselves need TensorRT (and a GPU); here the build stage's output is stood in for by
    files at the planned engine paths, the ONNX files are the real ones of an export.
    """
    out, fp32_report, _ = exported
    for path in out.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "unrelated.onnx").write_bytes(b"the user's")
    plan = plan_export(tmp_path / "r26.pth", tmp_path, precision="fp32,fp16", format="engine")
    for _, engine in plan.engines.values():
        engine.write_bytes(b"plan")
        sidecar_path(engine).write_text("{}")
    removed = remove_intermediates(plan, [plan.onnx, *plan.variants.values()])
    assert removed == 4
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["r26.engine", "r26.engine.json", "r26.fp16.engine", "r26.fp16.engine.json", "unrelated.onnx"]
    report = pipeline.ExportReport(plan=plan, onnx=fp32_report.onnx, variants=fp32_report.variants, removed=removed)
    data = report.to_dict()
    named = [s for s in _strings(data) if str(tmp_path) in s]
    assert named and all(Path(s).exists() for s in named), named
    assert "path" not in data and all("path" not in v for v in data["variants"])
    assert "artifact" not in dict(report.summary())


def test_engine_cleanup_after_a_failure_removes_only_what_the_run_wrote(tmp_path):
    plan = plan_export(tmp_path / "m.pth", tmp_path, precision="fp32,fp16", format="engine")
    for path in (plan.onnx, sidecar_path(plan.onnx), plan.variants["fp16"]):
        path.write_bytes(b"x")
    assert remove_intermediates(plan, [plan.onnx]) == 2  # the fp16 conversion never finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fp16.onnx"]


def test_a_failing_variant_leaves_the_finished_fp32_artifact(small_artifacts, tmp_path):
    empty = tmp_path / "calib"
    empty.mkdir()
    with pytest.raises(Exception, match="image") as info:
        pipeline.export(
            small_artifacts["checkpoint"],
            tmp_path,
            precision="int8",
            onnx=OnnxSettings(img_size=64, measure_latency=False),
            int8=Int8Settings(calibration=empty, samples=4),
        )
    from acmix_deploy.errors import AcmixDeployError

    assert isinstance(info.value, AcmixDeployError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "small.onnx", "small.onnx.json"]
    assert read_manifest(tmp_path / "small.onnx").precision == "fp32"


def test_library_export_refuses_a_name_that_leaves_the_output_folder(tmp_path):
    """export(name="../x") wrote outside output_dir; the CLI checked it, the library call did not."""
    import pytest

    from acmix_deploy.exporters.pipeline import ExportOptionsError, plan_export

    for bad in ("../x", "/abs/x", "a/b", ".hidden", ""):
        with pytest.raises(ExportOptionsError, match="name"):
            plan_export(tmp_path / "m.pth", tmp_path / "out", name=bad)
    assert plan_export(tmp_path / "m.pth", tmp_path / "out", name="ok").onnx == tmp_path / "out" / "ok.onnx"


def test_symlinked_destinations_are_refused_before_any_work(small_artifacts, tmp_path):
    """-o DIR where DIR is a link wrote into whatever it points to; a linked artifact path, --force or not, too."""
    from acmix_deploy.fileio import LinkedDestinationError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere, target_is_directory=True)
    settings = OnnxSettings(img_size=64, measure_latency=False)
    with pytest.raises(LinkedDestinationError, match="out is a symbolic link"):
        pipeline.export(small_artifacts["checkpoint"], tmp_path / "out", onnx=settings)
    assert not list(elsewhere.iterdir())
    real = tmp_path / "real"
    real.mkdir()
    (elsewhere / "theirs.onnx").write_bytes(b"theirs")
    (real / "small.onnx").symlink_to(elsewhere / "theirs.onnx")
    (real / "dangling.onnx").symlink_to(elsewhere / "missing.onnx")
    for name, force in (("small", True), ("small", False), ("dangling", True), ("dangling", False)):
        with pytest.raises(LinkedDestinationError, match=rf"{name}\.onnx is a symbolic link"):
            pipeline.export(small_artifacts["checkpoint"], real, name=name, onnx=settings, force=force)
    assert (elsewhere / "theirs.onnx").read_bytes() == b"theirs" and not (elsewhere / "missing.onnx").exists()
    assert sorted(p.name for p in real.iterdir()) == ["dangling.onnx", "small.onnx"]
    assert all(p.is_symlink() for p in real.iterdir())
