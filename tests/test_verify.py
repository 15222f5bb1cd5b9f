"""verify as a library call: reproducible from saved inputs, precision-aware tolerances that can still fail."""

from __future__ import annotations

import numpy as np
import pytest

from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.parity import INT8_RANDOM_INPUTS_TOLERANCE, PRECISION_TOLERANCES, Tolerance
from acmix_deploy.side_by_side import RecordedPrecision
from acmix_deploy.verify import default_tolerance, verify

NUMERIC = ("batches", "max_abs_diff", "max_abs_ref", "mean_abs_diff", "cosine_min", "top1_agreement", "passed",
           "tolerance", "abs_error", "rel_error")  # fmt: skip


def numbers(report) -> list[dict]:
    return [{k: c.to_dict()["parity"][k] for k in NUMERIC} for c in report.comparisons]


def corrupted_copy(src, dst, factor: float = 1.5):
    """``src`` with its largest float initializer scaled: a broken artifact whose manifest still looks fine."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims) if t.data_type == 1 else 0)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(model, str(dst))
    return dst


def test_loading_saved_inputs_reproduces_the_numbers_exactly(small_artifacts, tmp_path):
    onnx_path, ckpt = small_artifacts["onnx"], small_artifacts["checkpoint"]
    first = verify([onnx_path, ckpt], batch=3, seed=7, save_inputs=tmp_path / "in.npz", save_outputs=tmp_path / "out")
    assert first.passed and first.inputs["kind"] == "random"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.onnx.npz", "small.pth.npz"]
    again = verify([onnx_path, ckpt], load_inputs_from=tmp_path / "in.npz", save_outputs=tmp_path / "out", force=True)
    assert numbers(again) == numbers(first) and again.inputs["kind"] == "random" and again.inputs["count"] == 3
    assert first.comparisons[0].report.max_abs_diff > 0  # torch vs ORT: real numbers, not zeros compared
    with np.load(tmp_path / "out" / "small.pth.npz", allow_pickle=False) as saved:
        assert saved.files == ["logits"] and saved["logits"].shape == (3, 10)
    other_seed = verify([onnx_path, ckpt], batch=3, seed=8)
    assert numbers(other_seed) != numbers(first)


def test_existing_outputs_are_refused_before_any_work(small_artifacts, tmp_path):
    (tmp_path / "in.npz").write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="--force"):
        verify([small_artifacts["onnx"], "does-not-matter.onnx"], save_inputs=tmp_path / "in.npz")
    assert (tmp_path / "in.npz").read_bytes() == b"mine"


def test_a_corrupted_variant_fails_with_the_default_tolerance(small_artifacts, tmp_path):
    from acmix_deploy.manifest import read_manifest

    bad = corrupted_copy(small_artifacts["onnx"], tmp_path / "bad.onnx")
    assert read_manifest(bad).precision == "fp32"  # the embedded manifest travels with the copy
    report = verify([small_artifacts["onnx"], bad])
    assert not report.passed and report.comparisons[0].tolerance_source == "fp32"
    anything = {"rtol": 1e9, "min_cosine": -1, "min_top1_agreement": 0}
    loosened = verify([small_artifacts["onnx"], bad], tolerance=anything)
    assert loosened.passed and "user" in loosened.comparisons[0].tolerance_source  # explicit bounds win


def test_default_tolerance_follows_precision_and_what_export_recorded():
    fp32 = RecordedPrecision("fp32")
    assert default_tolerance(fp32, RecordedPrecision(), False).tolerance == Tolerance()
    recorded = {"tolerance": {"rtol": 0.05, "min_cosine": 0.999, "min_top1_agreement": 0.8}}
    mixed = default_tolerance(fp32, RecordedPrecision("mixed", parity=recorded), False)
    assert mixed.tolerance == Tolerance(0.05, 0.999, 0.8) and "recorded" in mixed.source
    assert default_tolerance(fp32, RecordedPrecision("mixed"), False).tolerance == PRECISION_TOLERANCES["mixed"]
    no_bound = {"tolerance": {"rtol": float("inf"), "min_cosine": 0.0, "min_top1_agreement": 0.9}}
    static = RecordedPrecision("int8", parity=no_bound, calibrated=True)
    on_images = default_tolerance(fp32, static, True).tolerance
    assert on_images == Tolerance(PRECISION_TOLERANCES["int8"].rtol, PRECISION_TOLERANCES["int8"].min_cosine, 0.9)
    assert default_tolerance(fp32, static, False).tolerance == INT8_RANDOM_INPUTS_TOLERANCE
    dynamic = default_tolerance(fp32, RecordedPrecision("int8", parity=no_bound), False).tolerance
    assert dynamic == on_images  # no calibration: random inputs are as good as any
    both = default_tolerance(RecordedPrecision("int8"), RecordedPrecision("mixed"), True).tolerance
    assert both == Tolerance(0.5, 0.8, 0.9)  # field by field the looser side: int8's diff and cosine, fp16's top-1


def test_the_precision_table_restates_the_exporters_bounds():
    from acmix_deploy.exporters.precision.fp16 import FP16_TOLERANCE
    from acmix_deploy.exporters.precision.int8_static import INT8_TOLERANCE

    assert PRECISION_TOLERANCES["mixed"] == PRECISION_TOLERANCES["fp16"] == FP16_TOLERANCE
    assert PRECISION_TOLERANCES["int8"] == INT8_TOLERANCE


@pytest.mark.parametrize("order", ["onnx first", "checkpoint first"])
def test_no_artifact_metadata_is_read_ahead_of_its_runner(small_artifacts, monkeypatch, order):
    """The input size checkpoints run at comes from the loaded runners, not from an extra manifest read.

    Before, the first ONNX's metadata was parsed three times (input size, runner, precision record);
    now once, by its runner (the precision record reuses the runner's manifest), whichever position it holds.
    """
    from acmix_deploy.manifest import reader

    reads: list[str] = []
    real = reader.read_onnx_metadata

    def counted(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(reader, "read_onnx_metadata", counted)
    from acmix_deploy.runtimes.torch import TorchRunner

    loads: list[str] = []
    real_load = TorchRunner._load

    def counted_load(self):
        loads.append(str(self.path))
        return real_load(self)

    monkeypatch.setattr(TorchRunner, "_load", counted_load)  # a closed runner asked for its manifest loads again
    onnx_path, ckpt = small_artifacts["onnx"], small_artifacts["checkpoint"]
    artifacts = [onnx_path, ckpt] if order == "onnx first" else [ckpt, onnx_path]
    report = verify(artifacts, batch=2)
    assert report.passed and reads == [str(onnx_path)] and loads == [str(ckpt)]
