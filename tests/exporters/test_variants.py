"""convert(): fp16/int8 variants of an existing fp32 ONNX through the export's own variant stage."""

from __future__ import annotations

import shutil

import onnx
import pytest

from acmix_deploy.exporters.pipeline import ExportOptionsError, Int8Settings, variant_path
from acmix_deploy.exporters.precision import PrecisionError
from acmix_deploy.exporters.variants import convert, plan_convert
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import read_manifest, sidecar_path


@pytest.fixture
def fp32(small_artifacts, tmp_path):
    """A copy of the small fp32 export and its sidecar, alone in a folder (as `export` left it)."""
    dst = tmp_path / "model.onnx"
    shutil.copy(small_artifacts["onnx"], dst)
    shutil.copy(sidecar_path(small_artifacts["onnx"]), sidecar_path(dst))
    return dst


def test_names_follow_the_export(tmp_path):
    assert variant_path(tmp_path / "m.onnx", "fp16") == tmp_path / "m.fp16.onnx"
    dynamic = Int8Settings(target="cpu-dynamic")
    planned = plan_convert(tmp_path / "m.onnx", tmp_path / "out", precision="int8,fp16", int8=dynamic)
    assert planned == {"int8": tmp_path / "out" / "m.int8.onnx", "fp16": tmp_path / "out" / "m.fp16.onnx"}
    with pytest.raises(ExportOptionsError, match="fp16/int8 variants of an fp32 ONNX"):
        plan_convert(tmp_path / "m.onnx", precision="fp32,fp16")
    with pytest.raises(ExportOptionsError, match="--calib"):
        plan_convert(tmp_path / "m.onnx", precision="int8")


def test_fp16_next_to_the_source_without_force_then_refuses_to_clobber(fp32):
    before = set(fp32.parent.iterdir())
    report = convert(fp32, precision="fp16")
    dst = fp32.with_name("model.fp16.onnx")
    assert set(fp32.parent.iterdir()) - before == {dst, sidecar_path(dst)}
    made = read_manifest(dst)
    assert made.precision == "mixed" and made.precision_report["parity"]["passed"]
    assert report.variants[0].path == dst and report.to_dict()["artifacts"] == [str(dst), str(sidecar_path(dst))]
    assert read_manifest(fp32).precision == "fp32"  # the source is untouched
    stamp = dst.read_bytes()
    with pytest.raises(OutputExistsError):
        convert(fp32, precision="fp16")
    assert dst.read_bytes() == stamp
    convert(fp32, precision="fp16", force=True)
    assert onnx.load(str(dst)).graph.node  # rewritten, still a model


def test_a_variant_is_not_a_source_and_nothing_is_written(fp32, tmp_path):
    half = convert(fp32, precision="fp16", output_dir=tmp_path / "v").variants[0].path
    assert half == tmp_path / "v" / "model.fp16.onnx"
    with pytest.raises(PrecisionError, match="precision is 'mixed'; convert from the fp32 export"):
        convert(half, precision="int8", int8=Int8Settings(target="cpu-dynamic"))
    assert sorted(p.name for p in half.parent.iterdir()) == ["model.fp16.onnx", "model.fp16.onnx.json"]
    with pytest.raises(PrecisionError, match="no such ONNX file"):
        convert(tmp_path / "missing.onnx")


def test_keep_fp32_reaches_the_variant_and_its_manifest(fp32, tmp_path):
    convert(fp32, tmp_path / "kept", precision="fp16", keep_fp32=["stem/head"])
    assert list(read_manifest(tmp_path / "kept" / "model.fp16.onnx").kept_fp32) == ["stem/head"]
    with pytest.raises(PrecisionError, match=r"layer9\.0"):
        convert(fp32, tmp_path / "bad", precision="fp16", keep_fp32=["layer9.0"])
    assert not (tmp_path / "bad" / "model.fp16.onnx").exists()
    with pytest.raises(ExportOptionsError, match=r"static int8"):
        dynamic = Int8Settings(target="cpu-dynamic")
        convert(fp32, tmp_path / "dyn", precision="int8", int8=dynamic, keep_fp32=["stem/head"])
