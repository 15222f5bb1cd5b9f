"""ONNX export: dynamic and fixed batch, graph quality, manifest, validation failures, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from acmix_deploy.checkpoint import save_checkpoint
from acmix_deploy.exporters.onnx import ExportError, export_onnx
from acmix_deploy.exporters.validate import ParityError, Tolerance
from acmix_deploy.fileio import OutputExistsError
from acmix_deploy.manifest import MANIFEST_KEY, BatchSpec, Manifest, ManifestError, read_sidecar
from acmix_deploy.models import build_model
from acmix_deploy.runtimes.onnxruntime import ort_session
from tests.conftest import SMALL_RESNET, SMALL_SWIN, randomize

FORBIDDEN_IN_RESNET = {"Gather", "GatherND", "GatherElements", "ScatterND", "Range", "Loop", "If"}


def assert_no_shape_arithmetic(proto: onnx.ModelProto) -> None:
    """Shape ops only as "reshape to that tensor's dimensions": each feeds a Reshape's shape input, nothing else."""
    shapes = {n.output[0] for n in proto.graph.node if n.op_type == "Shape"}
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in shapes:
                assert node.op_type == "Reshape" and i == 1, f"{node.op_type} {node.name} computes with a shape"


@pytest.fixture(scope="module")
def resnet():
    return randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=31)


@pytest.fixture(scope="module")
def swin():
    return randomize(build_model("acmix_swin_tiny", **SMALL_SWIN), seed=32)


@pytest.fixture(scope="module")
def resnet_onnx(resnet, tmp_path_factory):
    path = tmp_path_factory.mktemp("r") / "r26.onnx"
    report = export_onnx(resnet, path, img_size=64)
    return path, report


@pytest.fixture(scope="module")
def swin_onnx(swin, tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "swin.onnx"
    report = export_onnx(swin, path)
    return path, report


def run(path, x: np.ndarray) -> np.ndarray:
    return ort_session(path).run(None, {"input": x})[0]


@pytest.mark.parametrize("which", ["resnet", "swin"])
def test_dynamic_batch_is_exact_at_1_2_7_32(which, request):
    model = request.getfixturevalue(which)
    path, report = request.getfixturevalue(f"{which}_onnx")
    assert report.parity.passed and report.parity.batches == [1, 2, 7]
    session = ort_session(path)
    for batch in (1, 2, 7, 32):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        out = session.run(None, {"input": x})[0]
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
        assert (out.argmax(1) == ref.argmax(1)).all()


def test_resnet_graph_is_clean(resnet_onnx):
    path, report = resnet_onnx
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & FORBIDDEN_IN_RESNET, ops & FORBIDDEN_IN_RESNET
    assert_no_shape_arithmetic(proto)
    assert sum(n.op_type == "Shape" for n in proto.graph.node) <= 8  # one per ACmix block at most
    slices = {n.output[0] for n in proto.graph.node if n.op_type == "Slice"}
    chained = [n.name for n in proto.graph.node if n.op_type == "Slice" and n.input[0] in slices]
    assert chained == []  # the halo gathers' per-axis Slices are merged (graph passes)
    doubles = [t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.DOUBLE]
    assert doubles == []
    assert report.nodes == len(proto.graph.node) < 300
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 64, 64]


def test_swin_graph_has_single_layernorm_and_gelu(swin_onnx):
    path, _ = swin_onnx
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("LayerNormalization") == 2 * 12 + 3 + 1 + 1  # 2 per block, 3 merges, patch + final norm
    assert ops.count("Gelu") == 12
    assert not {"Erf", "If", "Loop", "Gather", "Shape"} & set(ops)


def test_manifest_in_metadata_and_sidecar(resnet_onnx):
    path, report = resnet_onnx
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    embedded = Manifest.from_json(props[MANIFEST_KEY])
    sidecar = read_sidecar(path)
    assert embedded.to_dict() == sidecar.to_dict() == report.manifest.to_dict()
    assert sidecar.family == "acmix_resnet" and sidecar.img_size == 64 and sidecar.num_classes == 10
    assert sidecar.preprocessing.crop == 64 and sidecar.preprocessing.mean == (0.485, 0.456, 0.406)
    assert sidecar.batch == BatchSpec(dynamic=True, min=1, max=32)
    assert sidecar.opset == 20 and set(sidecar.tools) >= {"torch", "onnx", "onnxruntime", "acmix_deploy"}
    assert sidecar.parity["onnxruntime_vs_torch_reference"]["passed"] is True


def test_manifest_labels_are_checked(resnet_onnx):
    data = read_sidecar(resnet_onnx[0]).to_dict()
    assert data["labels"] is None  # none given at export: ImageNet-1k or class_<i> at run time
    named = Manifest.from_dict({**data, "labels": [f"digit {i}" for i in range(10)]})
    assert named.labels[3] == "digit 3"
    for bad in (["a", "b"], "0123456789", [1] * 10, [".."] + [str(i) for i in range(9)], ["a/b"] * 10, [""] * 10):
        with pytest.raises(ManifestError, match="labels"):
            Manifest.from_dict({**data, "labels": bad})


def test_fixed_batch_export(resnet, tmp_path):
    path = tmp_path / "fixed.onnx"
    report = export_onnx(resnet, path, img_size=64, batch=3)
    assert report.parity.batches == [3]
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 3, 64, 64]
    assert read_sidecar(path).batch == BatchSpec(dynamic=False, min=3, max=3)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        run(path, np.zeros((2, 3, 64, 64), np.float32))


def test_export_from_checkpoint_records_source(resnet, tmp_path):
    ckpt = save_checkpoint(resnet, tmp_path / "r26.pth", layout="official", name="acmix_resnet26")
    report = export_onnx(ckpt, tmp_path / "r26.onnx", img_size=64, validate_batches=[2])
    source = report.manifest.source
    assert source["type"] == "checkpoint" and source["layout"] == "official-resnet" and len(source["sha256"]) == 64


def test_parity_failure_is_an_error_and_writes_nothing(resnet, tmp_path):
    path = tmp_path / "strict.onnx"
    with pytest.raises(ParityError, match=r"parity check failed") as info:
        export_onnx(resnet, path, img_size=64, tolerance=Tolerance(rtol=0.0), validate_batches=[1])
    assert not info.value.report.passed
    assert not path.exists() and not (tmp_path / "strict.onnx.json").exists()
    failed = json.loads((tmp_path / "strict.onnx.parity-failed.json").read_text())
    assert failed["passed"] is False and failed["max_abs_diff"] > 0
    assert not list(tmp_path.glob("*.partial"))


def test_never_overwrites_without_force(resnet, tmp_path):
    path = tmp_path / "keep.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        export_onnx(resnet, path, img_size=64)
    assert path.read_bytes() == b"precious"
    export_onnx(resnet, path, img_size=64, force=True, validate_batches=[1])
    assert onnx.load(path).graph.node


def test_bad_sizes_and_options(resnet, swin, tmp_path):
    with pytest.raises(ExportError, match="too small"):
        export_onnx(resnet, tmp_path / "a.onnx", img_size=32)
    with pytest.raises(ExportError, match="fixed to 64 px"):
        export_onnx(swin, tmp_path / "b.onnx", img_size=96)
    with pytest.raises(ExportError, match="opset"):
        export_onnx(resnet, tmp_path / "c.onnx", opset=13)


def test_naive_export_of_the_reference_loads_in_ort(resnet, tmp_path):
    report = export_onnx(resnet, tmp_path / "naive.onnx", img_size=64, rewrite=False, validate_batches=[2])
    assert report.parity.passed and not report.manifest.rewrite
    assert report.nodes > 3 * 241  # the reference is far larger than the deploy form


@pytest.mark.slow
def test_full_resnet50_export(tmp_path):
    model = randomize(build_model("acmix_resnet50"), seed=33)
    report = export_onnx(model, tmp_path / "r50.onnx", validate_batches=[1, 2])
    assert report.parity.passed
    ops = set(report.ops)
    assert not ops & FORBIDDEN_IN_RESNET
