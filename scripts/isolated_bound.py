"""The GEMM kernels of a model's optimised ORT graph, run on their own and unprofiled: a bound on its ratio.

Used by ``scripts/bench_floor.py --isolated``. Why it exists: ``--bound`` sums kernel times from
ONNX Runtime's node profiler, which also slows every kernel it records (a small model's profiled
run takes twice its unprofiled time). That inflation is small against the big kernels of batch 8
but not at batch 1, so a bound read off the profiler could be too high. Here the GEMM kernels
(and, in a second graph, the kernels the math needs in any graph: Softmax, LayerNorm, GELU) are
cut out of the very graph ONNX Runtime runs and timed as a model of their own, without the
profiler, interleaved with the full model and the GEMM probe.

How: one profiled run of the full model gives every kernel's input and output shapes; the same
session saves its optimised graph (NCHWc convolutions, fused Conv+activation, MatMul+transpose
fusions: exactly the kernels that ran). The kept nodes keep their edges to each other (a conv
chain in NCHWc stays a chain, so its inputs are as warm in cache as in the model); an input whose
producer was dropped becomes a graph input with its recorded shape, fed once, and every output no
kept node reads is bound to a buffer allocated once, so the timed call does no copies of its own.
The graph is loaded with graph optimisation off: the kernels are already the optimised ones.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Container, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from acmix_deploy.runtimes.onnxruntime import ort_session

GEMM_KERNELS = ("Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm")
REQUIRED_KERNELS = ("Softmax", "LayerNormalization", "SkipLayerNormalization", "Gelu", "BiasGelu")


def event_shapes(args: dict, key: str) -> list[list[int]]:
    """The shapes ORT's profiler recorded for a kernel (``input_type_shape`` / ``output_type_shape``)."""
    return [next(iter(item.values())) for item in args.get(key, [])]


def node_group(node: onnx.NodeProto) -> int:
    """A node's ``group`` attribute (1 when it has none, as for every non-grouped op)."""
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _prod(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def kernel_macs(op: str, inputs: list[list[int]], outputs: list[list[int]]) -> int:
    """Multiply-accumulates one GEMM-like kernel did, from the shapes ORT's profiler recorded.

    Conv: output elements x (input channels a group x kernel taps), from the weight's shape
    (ORT's NCHWc Conv has a blocked 5-D output whose element count is the same up to channel
    padding). MatMul/FusedMatMul: output elements x K, K = (A's last two dims) / M, which holds
    whether or not A is transposed. Gemm: output elements x (A's elements / M).
    """
    out = outputs[0]
    if op in ("Conv", "FusedConv"):
        return _prod(out) * _prod(inputs[1][1:])
    a = inputs[0]
    if len(a) < 2:
        return _prod(out) * a[0]
    m = out[-2] if len(out) >= 2 else 1
    if op == "Gemm":
        return _prod(out) * (_prod(a) // m)
    return _prod(out) * (a[-1] * a[-2] // m)


def _kernel_shapes(events: list[dict]) -> dict[str, tuple[list[list[int]], list[list[int]]]]:
    """Node name -> (input shapes, output shapes), from one profiled run."""
    shapes: dict[str, tuple[list[list[int]], list[list[int]]]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        shapes[e["name"].removesuffix("_kernel_time")] = (
            event_shapes(args, "input_type_shape"),
            event_shapes(args, "output_type_shape"),
        )
    return shapes


def optimized_graph(path: Path, batch: int, threads: int, workdir: Path) -> tuple[onnx.ModelProto, dict]:
    """The graph ONNX Runtime runs for a model export ``path`` (224 px input) and its kernels' shapes."""
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    return optimized_graph_for(path, {"input": x}, threads, workdir)


def optimized_graph_for(
    path: Path, feed: dict[str, np.ndarray], threads: int, workdir: Path
) -> tuple[onnx.ModelProto, dict]:
    """The graph ONNX Runtime runs for ``path`` on ``feed`` (saved by the session) and its kernels' shapes."""
    optimized = workdir / f"{path.stem}.optimized.onnx"
    session = ort_session(path, threads=threads, profile_prefix=workdir / "shapes", optimized_model_path=optimized)
    session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    return onnx.load(str(optimized)), _kernel_shapes(events)


def is_dense(node: onnx.NodeProto, initializers: Container[str]) -> bool:
    """A convolution with one group or a MatMul/Gemm against a weight: work any exact graph of the model does.

    The rest of the GEMM kernels (batched MatMuls of two activations: window attention; grouped
    convolutions: the conv branch) are where the deploy forms differ, in shape and in wasted work.
    """
    if node.op_type in ("Conv", "FusedConv"):
        return node_group(node) == 1
    return node.op_type in ("MatMul", "FusedMatMul", "Gemm") and any(i in initializers for i in node.input[1:2])


def kernels_only(
    model: onnx.ModelProto,
    shapes: dict,
    keep: Sequence[str],
    *,
    dense_only: bool = False,
    drop: Callable[[onnx.NodeProto], bool] | None = None,
) -> tuple[onnx.ModelProto, dict, dict]:
    """A model of the nodes whose op is in ``keep``; returns it, its input shapes and its output shapes.

    ``dense_only``: of the GEMM kernels, keep only the dense ones (:func:`is_dense`); ``drop``: leave
    out the nodes it is true for. Raises ValueError when a kept node ran without recorded shapes
    (it would be timed on guesses).
    """
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes = [
        n
        for n in graph.node
        if n.op_type in keep
        and not (dense_only and n.op_type in GEMM_KERNELS and not is_dense(n, initializers))
        and not (drop is not None and drop(n))
    ]
    produced = {out for n in nodes for out in n.output}
    consumed: set[str] = set()
    inputs: dict[str, list[int]] = {}
    outputs: dict[str, list[int]] = {}
    for node in nodes:
        if node.name not in shapes:
            raise ValueError(f"no recorded shapes for kernel {node.name!r} ({node.op_type})")
        in_shapes, out_shapes = shapes[node.name]
        for i, name in enumerate(node.input):
            if not name or name in initializers:
                continue
            consumed.add(name)
            if name not in produced:
                inputs.setdefault(name, in_shapes[i])
        for name, shape in zip(node.output, out_shapes, strict=False):
            outputs[name] = shape
    dangling = {name: shape for name, shape in outputs.items() if name not in consumed}
    used = {name for n in nodes for name in n.input}
    sub = helper.make_graph(
        nodes,
        "kernels",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in dangling.items()],
        [t for name, t in initializers.items() if name in used],
    )
    out = helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return out, inputs, dangling


def bound_runner(model: onnx.ModelProto, inputs: dict, outputs: dict, threads: int) -> Callable[[], None]:
    """A call that runs ``model`` on fixed inputs into fixed output buffers (no allocation, no copy).

    ``inputs``: name -> a shape (bound to random floats) or an array (bound as it is)."""
    import onnxruntime as ort

    session = ort_session(model, threads=threads, optimization="disable")
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    for name, spec in inputs.items():
        array = spec if isinstance(spec, np.ndarray) else rng.standard_normal(spec, dtype=np.float32)
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
    for name, shape in outputs.items():
        binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(np.empty(shape, dtype=np.float32)))

    def run() -> None:
        session.run_with_iobinding(binding)

    run()
    return run


def logit_bias_adds(model: onnx.ModelProto) -> set[str]:
    """The Adds whose sum a Softmax reads, directly or through Reshapes: a bias on attention logits.

    Swin-ACmix adds its relative position bias (and, in shifted blocks, the shift mask) to every
    logit; neither ONNX MatMul nor Softmax takes such an input, so some kernel must write the biased
    logits (see ``bench_floor.isolated``)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def reaches_softmax(name: str) -> bool:
        for node in consumers.get(name, []):
            if node.op_type == "Softmax" or (node.op_type == "Reshape" and reaches_softmax(node.output[0])):
                return True
        return False

    return {n.name for n in model.graph.node if n.op_type == "Add" and reaches_softmax(n.output[0])}


def in_branch(family: str, branch: str) -> Callable[[onnx.NodeProto], bool]:
    """Whether a node of the optimised graph belongs to ``branch`` (names as ``acmix-deploy profile`` folds them)."""
    from acmix_deploy.families.nodes import node_branch

    def test(node: onnx.NodeProto) -> bool:
        op = "Conv" if node.op_type == "FusedConv" else node.op_type
        return node_branch(family, node.name, op, node_group(node)) == branch

    return test


def isolated_candidates(
    path: Path, batch: int, threads: int, without_branch: tuple[str, str] | None = None
) -> dict[str, Callable[[], None]]:
    """Graphs cut from the model's optimised graph, each a call on fixed buffers.

    ``dense``: the dense GEMM kernels (:func:`is_dense`), which every exact graph of the model runs;
    ``gemm``: every GEMM kernel; ``gemm+required``: with Softmax, LayerNorm and GELU too.
    ``without_branch`` = (family, branch) adds ``gemm+required-<branch>``: the last without that
    branch's kernels (a bound adds the branch back at its fewest MACs). ``logit-bias``: the Adds of
    :func:`logit_bias_adds` alone, when the graph has any.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model, shapes = optimized_graph(path, batch, threads, Path(tmp))
    graphs = [
        ("dense", GEMM_KERNELS, True, None),
        ("gemm", GEMM_KERNELS, False, None),
        ("gemm+required", GEMM_KERNELS + REQUIRED_KERNELS, False, None),
    ]
    if without_branch is not None:
        family, branch = without_branch
        graphs.append((f"gemm+required-{branch}", GEMM_KERNELS + REQUIRED_KERNELS, False, in_branch(family, branch)))
    bias = logit_bias_adds(model)
    if bias:
        graphs.append(("logit-bias", ("Add",), False, lambda n: n.name not in bias))
    out = {}
    for label, keep, dense, drop in graphs:
        sub, inputs, outputs = kernels_only(model, shapes, keep, dense_only=dense, drop=drop)
        out[label] = bound_runner(sub, inputs, outputs, threads)
    return out


WRITE_CAP_FLOATS = 8 * 2**20  # 32 MB: larger writes are timed at this size and scaled (memory-bound)


def write_calls(
    floats: int, threads: int, cap_floats: int = WRITE_CAP_FLOATS
) -> tuple[dict[str, Callable[[], None]], float]:
    """The two cheapest ways ORT writes ``floats`` floats into a bound buffer: a copy (Concat of two
    halves: a memcpy) and a fill (ConstantOfShape, its shape fed at run time so nothing folds it), and
    the factor their times are scaled by: writes over ``cap_floats`` are timed at that size."""
    size = min(floats, cap_floats) // 2 * 2
    half = size // 2
    opset = [helper.make_opsetid("", 17)]
    concat = helper.make_graph(
        [helper.make_node("Concat", ["a", "b"], ["y"], axis=0)],
        "copy",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, half]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, half])],
    )
    copy = bound_runner(helper.make_model(concat, opset_imports=opset), {"a": [1, half], "b": [1, half]},
                        {"y": [2, half]}, threads)  # fmt: skip
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    fill_graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["y"], value=one)],
        "fill",
        [helper.make_tensor_value_info("shape", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])],
    )
    fill = bound_runner(helper.make_model(fill_graph, opset_imports=opset),
                        {"shape": np.array([size], dtype=np.int64)}, {"y": [size]}, threads)  # fmt: skip
    return {"copy": copy, "fill": fill}, floats / size


def add_write_calls(
    calls: dict, scales: dict, prefix: str, floats: int, threads: int, cap_floats: int = WRITE_CAP_FLOATS
) -> None:
    """Registers :func:`write_calls` of ``floats`` as ``<prefix>/copy`` and ``<prefix>/fill`` in ``calls``,
    with the factor their measured times are to be scaled by in ``scales``."""
    writes, scale = write_calls(floats, threads, cap_floats)
    for kind, call in writes.items():
        calls[f"{prefix}/{kind}"], scales[f"{prefix}/{kind}"] = call, scale


def cheapest_write_ms(ms: dict[str, float], prefix: str) -> float:
    """The cheaper of the two ways of a write registered by :func:`add_write_calls` (``ms`` already scaled)."""
    return min(ms[f"{prefix}/copy"], ms[f"{prefix}/fill"])
