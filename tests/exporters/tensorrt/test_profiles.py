"""Several optimisation profiles: parsing, the served range, which profile serves a batch, the sidecar record."""

from __future__ import annotations

import json

import pytest

from acmix_deploy.exporters.tensorrt import BuildError
from acmix_deploy.exporters.tensorrt.engine import prepare_build
from acmix_deploy.exporters.tensorrt.profile import compute_profiles, parse_profile, served_profile
from acmix_deploy.exporters.tensorrt.sidecar import make_engine_sidecar
from acmix_deploy.manifest import BatchSpec, EngineSidecar, ManifestError, read_manifest
from acmix_deploy.runtimes.base import RunnerError
from acmix_deploy.runtimes.tensorrt import engine_profiles
from acmix_deploy.runtimes.tensorrt_profiles import BatchRange, pick_profile, served_range, split_batch
from tests.exporters.test_tensorrt_build import HINT, _manifest, tiny_onnx  # noqa: F401 - fixture
from tests.test_cli import run_cli

SHAPE = ["batch", 3, 8, 8]
SMALL, LARGE = BatchRange(1, 1, 4), BatchRange(8, 16, 32)


def test_parse_profile():
    assert parse_profile("1:4:8") == (1, 4, 8)
    for bad in ("1:4", "a:b:c", "4:1:8", "0:1:2", "1:2:3:4"):
        with pytest.raises(BuildError, match="MIN"):
            parse_profile(bad)


def test_profiles_are_checked_against_the_onnx_promise():
    limits = BatchSpec(min=1, max=32)
    shapes = compute_profiles("input", SHAPE, limits, [(1, 1, 4), (8, 16, 32)])
    assert [p.batches for p in shapes] == [SMALL, LARGE] and shapes[1].opt == (16, 3, 8, 8)
    with pytest.raises(BuildError, match="outside what the ONNX was validated for"):
        compute_profiles("input", SHAPE, limits, [(1, 1, 4), (8, 16, 64)])
    with pytest.raises(BuildError, match="twice"):
        compute_profiles("input", SHAPE, limits, [(1, 1, 4), (1, 1, 4)])


def test_served_range_is_the_union_only_without_gaps():
    assert served_range([BatchRange(1, 1, 4), BatchRange(5, 8, 16)]) == (BatchRange(1, 1, 16), None)
    assert served_range([BatchRange(4, 8, 16), BatchRange(1, 2, 6)]) == (BatchRange(1, 8, 16), None)
    served, note = served_range([SMALL, LARGE])
    assert served == SMALL
    assert "batches 5..7 fall between its profiles" in note and "8:16:32" in note and "Triton" in note


def test_each_batch_gets_the_profile_that_holds_it():
    ranges = [SMALL, LARGE]
    assert [pick_profile(n, ranges) for n in (1, 4, 5, 8, 32, 33)] == [0, 0, None, 1, 1, None]
    overlapping = [BatchRange(1, 2, 16), BatchRange(4, 12, 16)]
    assert pick_profile(3, overlapping) == 0 and pick_profile(10, overlapping) == 1  # closest opt


def test_batches_in_a_gap_are_split_across_profiles():
    ranges = [SMALL, LARGE]
    assert split_batch(3, ranges) == [(0, 3)]
    assert split_batch(6, ranges) == [(0, 4), (0, 2)]
    assert split_batch(40, ranges) == [(1, 32), (1, 8)]
    with pytest.raises(RunnerError, match="3 is left over"):
        split_batch(3, [LARGE])


def test_prepare_build_with_profiles_and_the_sidecar_records_all(tiny_onnx, tmp_path):  # noqa: F811
    seen = []
    request = prepare_build(
        tiny_onnx, tmp_path / "t.engine", profiles=["1:1:2", "4:6:8"], progress=lambda s, m: seen.append(m)
    )
    assert [p.batches for p in request.profiles] == [BatchRange(1, 1, 2), BatchRange(4, 6, 8)]
    assert request.profile.batches == BatchRange(1, 1, 2) and "batches 3..3 fall between" in request.notes[0]
    assert any("profile 1: min (4, 3, 8, 8)" in m for m in seen)
    sidecar = make_engine_sidecar(
        manifest=_manifest(), onnx_path=tiny_onnx, onnx_sha256="0" * 64, profile=request.profile,
        profiles=request.profiles, precision="fp32", trt_version="10.16.1.11",
        gpu={"name": "G", "compute_capability": "9.0"}, build_seconds=1.0, builder={},
    )  # fmt: skip
    engine = tmp_path / "t.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "t.engine.json").write_text(json.dumps(sidecar.to_dict()))
    back = EngineSidecar.from_dict(json.loads((tmp_path / "t.engine.json").read_text()))
    assert engine_profiles(back) == [BatchRange(1, 1, 2), BatchRange(4, 6, 8)]
    assert read_manifest(engine).batch.to_dict() == {
        "dynamic": True,
        "min": 1,
        "max": 2,
        "opt": 1,
    }  # what Triton is told


def test_contiguous_profiles_serve_their_union(tiny_onnx, tmp_path):  # noqa: F811
    request = prepare_build(tiny_onnx, tmp_path / "t.engine", profiles=["1:1:3", "4:6:8"])
    served, note = served_profile(request.profiles)
    assert served.batches == BatchRange(1, 1, 8) and note is None and request.notes == []


def test_old_sidecars_have_their_one_profile_and_bad_lists_are_refused(tmp_path):
    sidecar = EngineSidecar.from_dict(json.loads(json.dumps(_sidecar_dict())))
    assert engine_profiles(sidecar) == [BatchRange(1, 4, 4)]
    data = _sidecar_dict()
    data["profiles"] = [{"min": [1]}]
    with pytest.raises(ManifestError, match="min/opt/max"):  # refused as the sidecar is read, not at first use
        EngineSidecar.from_dict(data)
    data["profiles"] = []
    with pytest.raises(ManifestError, match="non-empty list"):
        EngineSidecar.from_dict(data)


def _sidecar_dict() -> dict:
    shapes = {"input": "input", "min": [1, 3, 8, 8], "opt": [4, 3, 8, 8], "max": [4, 3, 8, 8]}
    return {"format": "acmix-deploy.tensorrt-engine", "format_version": 1, "precision": "fp32", "profile": shapes,
            "tensorrt": {"version": "10.0.1"}, "gpu": {"name": "G", "compute_capability": "9.0"},
            "manifest": _manifest().to_dict()}  # fmt: skip


def test_cli_build_takes_several_profiles(tiny_onnx, tmp_path):  # noqa: F811
    bad = run_cli("build", str(tiny_onnx), "--profile", "1:4", "-o", str(tmp_path / "t.engine"))
    assert bad.returncode == 2 and "--profile" in bad.stderr
    both = run_cli("build", str(tiny_onnx), "--profile", "1:1:4", "--profile", "2:4:8", "--hardware-compatibility",
                   "turing", "-o", str(tmp_path / "t.engine"))  # fmt: skip
    assert both.returncode == 2
    # Valid options get as far as TensorRT (not installed here, or no GPU): the profiles were accepted.
    ok = run_cli("build", str(tiny_onnx), "--profile", "1:1:4", "--profile", "5:8:8", "--version-compatible",
                 "-o", str(tmp_path / "t.engine"))  # fmt: skip
    assert ok.returncode == 1 and "profile 1: min (5, 3, 8, 8)" in ok.stdout + ok.stderr
