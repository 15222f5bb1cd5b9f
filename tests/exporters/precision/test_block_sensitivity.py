"""Precision debugging by ACmix block (exporters/precision/block_sensitivity.py) and ``--keep-fp32``.

On the shipped digits ACmix-ResNet-26 (trained, 64 px) and the real digits images: the ranking is
the same for the same seed, keeping the top-ranked unit in fp32 never increases the error of the
fully reduced model (measured again on the artifact export writes), the kept nodes really stay
float in the written ONNX and its manifest says so, and unknown names are refused in one line.
Stage level, a few images and no timing keep this small.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files

import onnx
import pytest

from acmix_deploy.exporters.precision import PrecisionError, to_fp16, to_int8
from acmix_deploy.exporters.precision.block_sensitivity import Error, block_sensitivity
from acmix_deploy.exporters.precision.blocks import LEVELS, keep_fp32_nodes, parse_keep_fp32, parse_levels
from acmix_deploy.exporters.precision.common import cpu_runner, load_fp32_source, run_batched
from acmix_deploy.exporters.precision.int8_static import calibration_images
from acmix_deploy.manifest import Manifest, read_manifest

CKPT = files("acmix_deploy") / "data" / "demo" / "digits_acmix_resnet26.pth"
FAST = {"samples": 8, "levels": ("stage",), "alone": False, "timing_rounds": 0}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point (cli.main maps errors to exit codes and one-line messages)."""
    return subprocess.run([sys.executable, "-m", "acmix_deploy.cli", *args], capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def test_fp16_ranking_is_deterministic_and_the_top_unit_helps(digits, tmp_path):
    """Two runs with one seed rank alike (the second through the CLI); the top island cuts the error."""
    first = block_sensitivity(digits["onnx"], "fp16", data=digits["test"], seed=3, **FAST)
    keep = tmp_path / "keep.txt"
    result = run_cli(
        "sensitivity", str(digits["onnx"]), "--precision", "fp16", "--data", str(digits["test"]), "--seed", "3",
        "--samples", "8", "--level", "stage", "--no-alone", "--rounds", "0", "-o", str(keep), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    second = json.loads(result.stdout)
    assert [u["name"] for u in second["units"]] == [u.unit.name for u in first.units]
    assert [u["kept_fp32"] for u in second["units"]] == [u.kept.to_dict() for u in first.units]
    assert {u.unit.name for u in first.units} == {"stem/head", "layer1.0", "layer2", "layer3", "layer4.0"}
    top = first.units[0]
    assert top.kept.max_abs <= first.full.max_abs and top.kept.top1_agreement >= first.full.top1_agreement
    assert parse_keep_fp32(f"@{keep}") == tuple(second["keep_fp32"]) == tuple(first.keep)
    # the variant export writes with the top unit in fp32, run on the same images: no worse than fully fp16
    source = load_fp32_source(digits["onnx"])
    x = calibration_images(digits["test"], source.manifest, 8, seed=3)
    ref = run_batched(source.run, x)
    to_fp16(digits["onnx"], tmp_path / "kept.onnx", keep_fp32=[top.unit.name], numpy_check=False)
    kept = Error.between(ref, run_batched(cpu_runner(onnx.load(tmp_path / "kept.onnx")), x))
    assert kept.max_abs == pytest.approx(top.kept.max_abs, rel=1e-6)
    assert kept.max_abs <= first.full.max_abs


def test_fp16_keep_fp32_leaves_those_nodes_float_and_the_manifest_says_so(digits, tmp_path):
    dst = tmp_path / "h.onnx"
    to_fp16(digits["onnx"], dst, keep_fp32=["layer2.0", "stem/head"], numpy_check=False)
    source = load_fp32_source(digits["onnx"])
    kept = set(keep_fp32_nodes(source.model, source.manifest, ["layer2.0", "stem/head"]))
    model = onnx.shape_inference.infer_shapes(onnx.load(dst))
    elem = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    elem |= {t.name: t.data_type for t in model.graph.initializer}
    float_outputs = {n.name: [elem.get(o) for o in n.output] for n in model.graph.node}
    for name in kept:  # every kept node computes float32 (a node with float outputs never writes float16)
        assert onnx.TensorProto.FLOAT16 not in float_outputs[name], name
    others = [n for n in model.graph.node if n.name not in kept and n.op_type == "Conv"]
    assert others and all(onnx.TensorProto.FLOAT16 in float_outputs[n.name] for n in others)
    manifest = read_manifest(dst)
    assert manifest.kept_fp32 == ["layer2.0", "stem/head"]
    assert manifest.precision_report["details"]["keep_fp32"] == {"names": ["layer2.0", "stem/head"], "nodes": len(kept)}
    assert Manifest.from_json(manifest.to_json()) == manifest  # the typed field round-trips
    assert "kept_fp32" not in read_manifest(digits["onnx"]).to_dict()  # absent where nothing was kept


def test_int8_keep_one_in_float_ranks_and_keep_fp32_excludes_those_nodes(digits, tmp_path):
    report = block_sensitivity(digits["onnx"], "int8", data=digits["test"], calib=digits["train"], calib_samples=8,
                               **FAST)  # fmt: skip
    top = report.units[0]
    assert top.kept.max_abs <= report.full.max_abs
    assert top.kept.top1_agreement >= report.full.top1_agreement
    keep = [top.unit.name]
    dst = tmp_path / "q.onnx"
    to_int8(digits["onnx"], dst, calibration=digits["train"], samples=16, keep_fp32=keep, sensitivity=False,
            eval_dir=digits["test"], eval_limit=32)  # fmt: skip
    model = onnx.load(dst)
    source = load_fp32_source(digits["onnx"])
    kept = set(keep_fp32_nodes(source.model, source.manifest, keep))
    kept_convs = [n for n in source.model.graph.node if n.name in kept and n.op_type in ("Conv", "Gemm")]
    by_name = {n.name: n.op_type for n in model.graph.node}
    assert kept_convs and all(by_name.get(n.name) == n.op_type for n in kept_convs)  # still float Conv/Gemm
    assert any(op.startswith("QLinear") for op in by_name.values())  # the rest is quantized
    manifest = read_manifest(dst)
    assert manifest.kept_fp32 == keep and manifest.precision == "int8"


def test_int8_without_data_is_measured_on_images_calibration_never_read(digits, tmp_path):
    """No --data: the calibration folder is split as export's int8 check splits it (split_calibration).

    The fully int8 error the report gives is the one of a model calibrated on the kept share, measured
    on the held-out share (here all 4 of 20 images): never on an image calibration read.
    """
    import shutil

    import numpy as np

    from acmix_deploy.exporters.precision import split_calibration
    from acmix_deploy.exporters.precision.int8_static import Int8Options, StaticQuantizer

    calib = tmp_path / "calib"
    for name in ("0", "1", "2", "3", "4"):
        (calib / name).mkdir(parents=True)
        for image in sorted((digits["train"] / name).iterdir())[:4]:
            shutil.copy(image, calib / name / image.name)
    report = block_sensitivity(digits["onnx"], "int8", calib=calib, calib_samples=8, **FAST)
    source = load_fp32_source(digits["onnx"])
    images, heldout = split_calibration(calib, source.manifest, 8, seed=0)
    assert len(images) == 8 and len(heldout.images) == 4
    flat = {row.tobytes() for row in images}
    assert not any(row.tobytes() in flat for row in heldout.images)
    work = tmp_path / "work"
    work.mkdir()
    quantized = StaticQuantizer(source, images, Int8Options(samples=8, sensitivity=False), work).quantize([]).model
    expected = Error.between(run_batched(source.run, heldout.images),
                             run_batched(cpu_runner(quantized), heldout.images))  # fmt: skip
    assert report.full.max_abs == pytest.approx(expected.max_abs, rel=1e-6)
    assert report.full.cosine_min == pytest.approx(expected.cosine_min, rel=1e-6)
    assert np.isfinite(report.full.max_abs) and report.held_out == heldout.record()
    assert report.inputs.startswith("4 of the 4 images of calib held out of calibration (of 20; seed 0)")
    assert report.to_dict()["held_out"] == {"source": "calibration split", "where": str(calib), "images": 4, "of": 20}


def test_unknown_names_are_refused_in_one_line(digits, tmp_path):
    with pytest.raises(PrecisionError, match=r"unknown --keep-fp32 name\(s\) 'layer9\.0'; valid: stem/head, layer1"):
        to_fp16(digits["onnx"], tmp_path / "x.onnx", keep_fp32=["layer9.0"])
    assert not (tmp_path / "x.onnx").exists()
    # the CLI refuses before exporting anything (the checkpoint's architecture gives the names)
    result = run_cli("export", str(CKPT), "-o", str(tmp_path), "--precision", "fp16", "--keep-fp32", "layer2.0,bogus")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown --keep-fp32 name(s) 'bogus'; valid: stem/head")
    assert "layer2.0" in lines[0] and "<block>." in lines[0] and not result.stdout.strip()
    assert not list(tmp_path.glob("*.onnx"))
    from acmix_deploy.exporters.pipeline import ExportOptionsError, export

    with pytest.raises(ExportOptionsError, match="add --precision fp16/int8"):
        export(CKPT, tmp_path, keep_fp32=["layer2.0"])  # nothing reduced to keep it from


@pytest.mark.parametrize("levels", [("stage", "bogus"), (), "stage,leaves", " , "])
def test_unknown_levels_are_refused_by_the_library_in_one_line_before_any_work(tmp_path, levels):
    """The library checks levels itself, first (the artifact here does not even exist)."""
    with pytest.raises(PrecisionError, match=r"; choose one or more of stage, block, branch") as info:
        block_sensitivity(tmp_path / "missing.onnx", "fp16", levels=levels)
    message = str(info.value)
    assert "\n" not in message and ("no level given" in message) == (levels in ((), " , "))
    assert parse_levels(" stage, block,stage") == ("stage", "block") == parse_levels(["stage", "block"])


def test_int8_without_calibration_images_is_refused_by_the_library_before_any_work(tmp_path):
    """The one owner of this check (the CLI calls the same one, for exit 2): the artifact here does not exist."""
    with pytest.raises(PrecisionError, match=r"^int8 sensitivity needs calibration images \(calib / --calib DIR\)$"):
        block_sensitivity(tmp_path / "missing.onnx", "int8")


def test_an_islands_noise_is_the_speed_verdicts_noise():
    """One definition of timing noise (timing.compare_speed's, in ms of the fully reduced run): a 20 ms island
    stands out of it, and with fewer than 4 rounds there is none (the table says ``±?``), as compare_speed says."""
    import time

    import numpy as np

    from acmix_deploy.exporters.precision.block_sensitivity import _island_ms

    x1 = np.zeros((1, 3, 8, 8), np.float32)
    reduced, kept = lambda x: time.sleep(0.005), lambda x: time.sleep(0.025)
    island, noise = _island_ms(reduced, kept, x1, 8)
    assert 15.0 < island < 40.0 and noise is not None and 0.0 <= noise < island
    assert _island_ms(reduced, kept, x1, 3)[1] is None and _island_ms(reduced, kept, x1, 0) == (None, None)
    from acmix_deploy.exporters.precision.block_sensitivity import Error, SensitivityReport, UnitSensitivity
    from acmix_deploy.exporters.precision.blocks import Unit

    err = Error(1.0, 0.5, 0.9, 1.0)
    units = [UnitSensitivity(Unit("layer1", "stage", ("a",)), err, None, *_island_ms(reduced, kept, x1, 3))]
    speed = {"rounds": 3, "fp32_p50_ms": 1.0, "reduced_p50_ms": 1.0}
    table = SensitivityReport("int8", "m.onnx", "8 inputs", err, units, [], None, speed).table()
    assert " ±?" in table and "per-round ratio" in table


def test_level_choices_match_the_library():
    from acmix_deploy.commands.precision import LEVEL_CHOICES

    assert LEVEL_CHOICES == LEVELS


def test_keep_list_reads_names_and_at_files(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("# from sensitivity\nlayer2.0\n\nstem/head  # the stem\nlayer2.0\n")
    assert parse_keep_fp32(f"@{path}") == ("layer2.0", "stem/head")
    assert parse_keep_fp32(" layer1.0, layer3 ,") == ("layer1.0", "layer3")
    with pytest.raises(PrecisionError, match="cannot read keep-fp32 list"):
        parse_keep_fp32(f"@{tmp_path / 'missing.txt'}")
    assert parse_keep_fp32(None) == ()
