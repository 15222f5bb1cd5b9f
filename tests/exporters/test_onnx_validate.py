"""Export validation: one reference run at the largest batch, the ONNX graph proven at every batch size."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.exporters.onnx import LATENCY_ROUNDS, export_onnx
from acmix_deploy.exporters.pipeline import ExportPlan
from acmix_deploy.exporters.pipeline import ExportReport as PipelineReport
from acmix_deploy.exporters.validate import check_parity
from acmix_deploy.models import build_model
from acmix_deploy.runtimes.onnxruntime import ort_session
from tests.conftest import SMALL_RESNET, randomize

BATCHES = [1, 2, 7]


@pytest.fixture(scope="module")
def resnet():
    return randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=41)


@pytest.fixture(scope="module")
def exported(resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "r26.onnx"
    return export_onnx(resnet, path, img_size=64, measure_latency=True)


def corrupted_at(path, batch: int) -> onnx.ModelProto:
    """The exported graph with 1.0 added to every logit when, and only when, the batch is ``batch``."""
    model = onnx.load(str(path))
    graph = model.graph
    (producer,) = [n for n in graph.node if "logits" in n.output]
    producer.output[list(producer.output).index("logits")] = "logits_clean"
    graph.initializer.append(helper.make_tensor("bad_batch", TensorProto.INT64, [1], [batch]))
    graph.node.extend(
        [
            helper.make_node("Shape", ["input"], ["n"], start=0, end=1),
            helper.make_node("Equal", ["n", "bad_batch"], ["is_bad"]),
            helper.make_node("Cast", ["is_bad"], ["bump"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["logits_clean", "bump"], ["logits"]),
        ]
    )
    onnx.checker.check_model(model)
    return model


def session_runner(model):
    session = ort_session(model)
    return lambda x: session.run(None, {"input": x})[0]


def test_export_reports_the_same_batches_and_passes(exported):
    assert exported.parity.passed and exported.parity.batches == BATCHES
    assert exported.manifest.parity["onnxruntime_vs_torch_reference"]["batches"] == BATCHES


def test_reference_runs_once_at_the_largest_batch(resnet, exported):
    seen: list[int] = []
    handle = resnet.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        report = check_parity(resnet, session_runner(exported.path), img_size=64, batches=BATCHES)
    finally:
        handle.remove()
    assert seen == [7]
    assert report.passed and report.batches == BATCHES


def test_sliced_reference_rows_equal_per_batch_runs(resnet):
    """The premise of slicing: in eval mode a row's logits do not depend on the batch it ran in."""
    x = np.random.default_rng(0).standard_normal((7, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        full = resnet(torch.from_numpy(x)).numpy()
        for b in (1, 2):
            part = resnet(torch.from_numpy(x[:b])).numpy()
            assert np.abs(part - full[:b]).max() <= 1e-5 * max(1.0, np.abs(full).max())


@pytest.mark.parametrize("bad", BATCHES)
def test_graph_corrupted_at_one_batch_fails_validation(resnet, exported, bad):
    run = session_runner(corrupted_at(exported.path, bad))
    report = check_parity(resnet, run, img_size=64, batches=BATCHES)
    assert not report.passed and report.batches == BATCHES
    assert report.max_abs_diff >= 0.99  # the bump, not noise
    others = [b for b in BATCHES if b != bad]
    assert check_parity(resnet, run, img_size=64, batches=others).passed  # only that batch is wrong


def test_training_mode_reference_is_refused(exported):
    model = build_model("acmix_resnet26", **SMALL_RESNET).train()
    with pytest.raises(AcmixDeployError, match="eval mode"):
        check_parity(model, session_runner(exported.path), img_size=64, batches=BATCHES)
    with pytest.raises(AcmixDeployError, match=">= 1"):
        check_parity(model.eval(), session_runner(exported.path), img_size=64, batches=[])


def test_latency_check_reports_both_sides_and_its_rounds(exported):
    lat = exported.latency_ms
    assert set(lat) == {"torch_reference", "onnxruntime"} and all(v > 0 for v in lat.values())
    plan = ExportPlan(onnx=exported.path, variants={}, engines={}, format="onnx")
    rows = dict(PipelineReport(plan=plan, onnx=exported).summary())
    assert f"median of {LATENCY_ROUNDS}, interleaved" in rows["latency"]
