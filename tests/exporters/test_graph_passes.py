"""Graph passes: chained Slices merged into one, exactly, and only where that is safe."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import TensorProto, helper

from acmix_deploy.exporters.graph import merge_chained_slices, optimize_graph
from acmix_deploy.runtimes.onnxruntime import ort_session

SHAPE = [2, 5, 8, 6]


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def _model(slices: list[tuple[list[int], list[int], list[int], list[int] | None]], *, extra_use: bool = False):
    """x -> Slice -> Slice -> ... -> y; ``extra_use`` also exposes the first Slice's output."""
    nodes, inits, src = [], [], "x"
    for i, (starts, ends, axes, steps) in enumerate(slices):
        names = [f"s{i}_starts", f"s{i}_ends", f"s{i}_axes"]
        inits += [_ints(names[0], starts), _ints(names[1], ends), _ints(names[2], axes)]
        if steps is not None:
            names.append(f"s{i}_steps")
            inits.append(_ints(names[3], steps))
        out = "y" if i == len(slices) - 1 else f"t{i}"
        nodes.append(helper.make_node("Slice", [src, *names], [out], name=f"slice{i}"))
        src = out
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, list("abcd"))]
    if extra_use:
        nodes.append(helper.make_node("Relu", ["t0"], ["side"], name="side"))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, list("efgh")))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, tmp_path, name: str) -> list[np.ndarray]:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    x = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    return ort_session(path).run(None, {"x": x})


def _merged(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    graph = gs.import_onnx(model)
    count = merge_chained_slices(graph)
    graph.cleanup().toposort()
    return gs.export_onnx(graph), count


@pytest.mark.parametrize(
    "chain",
    [
        # the halo pattern: t[:, :, 1:8, :, :6] exports as one Slice per axis
        [([1], [5], [1], None), ([0], [4], [3], None)],
        # strided (the stride-2 q[::2, ::2]), three axes, open ends
        [([0], [2**62], [2], [2]), ([1], [2**62], [3], [2]), ([0], [1], [0], [1])],
        # several axes per Slice
        [([0, 1], [2, 4], [0, 1], None), ([2, 1], [7, 5], [2, 3], [2, 2])],
    ],
)
def test_chained_slices_merge_into_one_exactly(chain, tmp_path):
    model = _model(chain)
    merged, count = _merged(model)
    assert count == len(chain) - 1
    assert [n.op_type for n in merged.graph.node] == ["Slice"]
    onnx.checker.check_model(merged, full_check=True)
    (want,), (got,) = _run(model, tmp_path, "chain"), _run(merged, tmp_path, "merged")
    assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize(
    ("chain", "extra_use"),
    [
        ([([1], [5], [1], None), ([0], [4], [1], None)], False),  # same axis twice: not a plain union
        ([([1], [5], [-3], None), ([0], [4], [3], None)], False),  # negative axis: rank unknown here
        ([([1], [5], [1], None), ([0], [4], [3], None)], True),  # the first output also feeds a Relu
    ],
)
def test_unsafe_chains_are_left_alone(chain, extra_use, tmp_path):
    model = _model(chain, extra_use=extra_use)
    merged, count = _merged(model)
    assert count == 0
    assert sum(n.op_type == "Slice" for n in merged.graph.node) == 2
    for want, got in zip(_run(model, tmp_path, "chain"), _run(merged, tmp_path, "merged"), strict=True):
        assert np.array_equal(got, want)


def test_a_shared_first_slice_folds_into_each_consumer(tmp_path):
    """torch.onnx shares a common leading Slice between index expressions (t[:, 1:5, :2], t[:, 1:5, 2:])."""
    model = _model([([1], [5], [1], None), ([0], [2], [3], None)])
    graph = model.graph
    graph.initializer.extend([_ints("o_starts", [2]), _ints("o_ends", [6]), _ints("o_axes", [3])])
    graph.node.append(helper.make_node("Slice", ["t0", "o_starts", "o_ends", "o_axes"], ["other"], name="other"))
    graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, list("efgh")))
    merged, count = _merged(model)
    assert count == 2
    assert [n.op_type for n in merged.graph.node] == ["Slice", "Slice"]
    assert all(n.input[0] == "x" for n in merged.graph.node)
    for want, got in zip(_run(model, tmp_path, "chain"), _run(merged, tmp_path, "merged"), strict=True):
        assert got.shape == want.shape and np.array_equal(got, want)


def test_slice_with_computed_parameters_is_left_alone(tmp_path):
    """Parameters that are not constants (here a Shape of the input) are never merged."""
    model = _model([([1], [5], [1], None), ([0], [4], [3], None)])
    graph = model.graph
    graph.node.insert(0, helper.make_node("Shape", ["x"], ["x_shape"], start=3, end=4, name="shape"))
    graph.node[2].input[2] = "x_shape"  # the second Slice ends at the input's last dimension
    merged, count = _merged(model)
    assert count == 0
    (want,), (got,) = _run(model, tmp_path, "chain"), _run(merged, tmp_path, "merged")
    assert np.array_equal(got, want)


def test_optimize_graph_merges_and_keeps_the_graph_valid(tmp_path):
    model = _model([([1], [5], [1], None), ([0], [4], [3], None)])
    out = optimize_graph(model, batch_dim="batch")
    onnx.checker.check_model(out, full_check=True)
    assert [n.op_type for n in out.graph.node] == ["Slice"]
    (want,), (got,) = _run(model, tmp_path, "chain"), _run(out, tmp_path, "optimized")
    assert np.array_equal(got, want)
