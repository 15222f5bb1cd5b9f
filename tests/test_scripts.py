"""The benchmark scripts run end to end (smallest settings): their numbers are only quoted, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_bench_gpu_dry_run_on_cpu(tmp_path):
    proc = _run("scripts/bench_gpu.py", "--allow-cpu", "--models", "acmix_resnet26", "--batches", "1",
                "--iters", "1", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    rows = result["models"]["acmix_resnet26"]["rows"]
    assert [r["artifact"] for r in rows] == ["torch eager fp32 (cpu, official)", "onnxruntime CPU fp32"]
    assert any("TensorRT" in s for s in result["models"]["acmix_resnet26"]["skipped"])


def test_bench_gpu_refuses_without_gpu_unless_asked():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = _run("scripts/bench_gpu.py", "--models", "acmix_resnet26")
    assert proc.returncode != 0 and "--allow-cpu" in proc.stderr


def test_bench_int8_kernels_prints_every_shape():
    proc = _run("scripts/bench_int8_kernels.py", "--rounds", "1", "--batches", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("x\n") >= 14 and "time-weighted" in proc.stdout


def test_isolated_bound_cuts_the_gemm_kernels_out_of_the_optimised_graph(tmp_path):
    """The dense / all-GEMM / with-required graphs keep exactly their kernels, keep edges, and run."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    sys.path.insert(0, str(ROOT / "scripts"))
    from isolated_bound import GEMM_KERNELS, REQUIRED_KERNELS, isolated_candidates, kernels_only, optimized_graph

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3), dtype=np.float32), "w_dense"),
        numpy_helper.from_array(rng.standard_normal((16, 16, 1, 1), dtype=np.float32), "w_dense2"),
        numpy_helper.from_array(rng.standard_normal((16, 4, 3, 3), dtype=np.float32), "w_grouped"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w_dense"], ["a"], name="dense", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Conv", ["b", "w_dense2"], ["c"], name="dense2"),
        helper.make_node("Conv", ["c", "w_grouped"], ["d"], name="grouped", pads=[1, 1, 1, 1], group=4),
        helper.make_node("MatMul", ["d", "d"], ["e"], name="attention"),  # two activations: not dense
        helper.make_node("Softmax", ["e"], ["out"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 16, 224, 224])],
        weights,
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)

    model, shapes = optimized_graph(path, 1, 1, tmp_path)
    kept = {}
    for label, keep, dense in (("dense", GEMM_KERNELS, True), ("gemm", GEMM_KERNELS, False),
                               ("required", GEMM_KERNELS + REQUIRED_KERNELS, False)):  # fmt: skip
        sub, inputs, outputs = kernels_only(model, shapes, keep, dense_only=dense)
        kept[label] = sorted(n.op_type for n in sub.graph.node)
        assert all(n.op_type in keep for n in sub.graph.node)
        if label == "dense":
            # the two dense convs stay chained: only the first one reads a graph input
            assert len(inputs) == 1 and len(outputs) == 1
    assert len(kept["dense"]) == 2
    assert len(kept["gemm"]) == 4 and "MatMul" in kept["gemm"]
    assert kept["required"] == sorted([*kept["gemm"], "Softmax"])
    calls = isolated_candidates(path, 1, 1)
    assert sorted(calls) == ["dense", "gemm", "gemm+required"]
    for call in calls.values():
        call()


def test_logit_bias_adds_are_the_adds_a_softmax_reads_through_reshapes(tmp_path):
    """Swin's relative-position bias: the Add before the Softmax (a Reshape between them) is found, a
    residual Add is not, and the isolated candidates time it alone."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    sys.path.insert(0, str(ROOT / "scripts"))
    from isolated_bound import isolated_candidates, logit_bias_adds

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((224, 224), dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1, 2, 224, 224], dtype=np.int64), "shape"),
        numpy_helper.from_array(rng.standard_normal((2, 3, 1, 1), dtype=np.float32), "w"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["x"], name="conv"),
        helper.make_node("MatMul", ["x", "x"], ["logits"], name="qk"),
        helper.make_node("Add", ["logits", "bias"], ["biased"], name="bias_add"),
        helper.make_node("Reshape", ["biased", "shape"], ["biased4"], name="reshape"),
        helper.make_node("Softmax", ["biased4"], ["attn"], name="softmax", axis=-1),
        helper.make_node("Add", ["attn", "x"], ["out"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert logit_bias_adds(model) == {"bias_add"}
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    calls = isolated_candidates(path, 1, 1)
    assert "logit-bias" in calls
    calls["logit-bias"]()


def test_window_matmul_bound_counts_every_block_size_its_copies_and_the_fewest_conv_macs():
    sys.path.insert(0, str(ROOT / "scripts"))
    from collections import Counter

    from bench_window_matmuls import (
        attention_layers,
        block_candidates,
        conv_branch,
        mask_add_call,
        window_candidates,
    )
    from isolated_bound import cheapest_write_ms, write_calls

    layers = attention_layers("acmix_resnet26")
    assert sum(layers.values()) == 8 and (56, 1, 16, 4, 7) in layers
    sizes = [b for b, *_ in block_candidates(56, 1, 16, 4, 7, batch=1, max_mb=1e9)]
    assert sizes == [1, 2, 4, 7, 8, 14, 28, 56]  # b = 1 is the unfold form: 49 keys a query, no waste
    shapes = {b: rest for b, *rest in block_candidates(56, 1, 16, 4, 7, batch=2, max_mb=1e9)}
    assert shapes[8][0]["qk"] == ((2 * 4 * 49, 64, 16), (2 * 4 * 49, 16, 196), False)
    assert shapes[1][0]["qk"][1] == (2 * 4 * 3136, 16, 49)
    # the rows Softmax and the mask cover: the block's halo (196 keys at b = 8), exactly the window at b = 1
    assert shapes[8][1] == (2 * 4 * 49, 64, 196) and shapes[1][1] == (2 * 4 * 3136, 1, 49)
    # copies: k and v halos, q blocks and the output; one block reads the unpadded map and copies nothing
    assert shapes[8][2] == 2 * (2 * 4 * 49) * 196 * 16 + 2 * (2 * 4 * 49) * 64 * 16
    assert shapes[56][1] == (2 * 4, 3136, 3136) and shapes[56][2] == 0
    stride2 = {b: rest[1] for b, *rest in block_candidates(28, 2, 32, 4, 7, batch=1, max_mb=1e9)}
    assert stride2[1][-1] == 49 and stride2[4][-1] == (2 * 4 + 5) ** 2
    (masked,) = mask_add_call((3, 4, 5), threads=1)()  # one (4, 5) mask broadcast over the 3 blocks
    assert masked.shape == (3, 4, 5)
    # the positional term: one write of the k map a layer, both ways, scaled past the cap
    calls, _, scales = window_candidates(Counter({(7, 1, 16, 2, 7): 1}), 2, 1, 1e9, 1000 * 4 / 2**20)
    assert scales["(7, 1, 16, 2, 7)/pe/copy"] == 2 * 2 * 16 * 49 / 1000
    assert {"(7, 1, 16, 2, 7)/pe/copy", "(7, 1, 16, 2, 7)/pe/fill"} <= set(calls)
    assert cheapest_write_ms({"w/copy": 2.0, "w/fill": 1.5}, "w") == 1.5
    # writes: timed at the cap and scaled beyond it; both calls run
    writes, scale = write_calls(1000, threads=1, cap_floats=250)
    assert sorted(writes) == ["copy", "fill"] and scale == 4.0
    for call in writes.values():
        call()
    # stride 1: folded (108 C a pixel) = official fc + dep_conv; stride 2: fc at input resolution costs more
    assert conv_branch((56, 1, 16, 4, 7)).fewest_macs(1) == 108 * 64 * 56 * 56
    assert conv_branch((28, 2, 32, 4, 7)).fewest_macs(2) == 2 * 108 * 128 * 28 * 28


def test_conv_forms_cover_every_merge_and_time_only_the_conv_kernels():
    sys.path.insert(0, str(ROOT / "scripts"))
    from conv_forms import ConvBranch, fastest_forms, form_candidates, form_convs

    layer = ConvBranch(32, 4, 8, 2)  # head_dim 8: merges 1, 2, 4, 8
    forms = form_convs(layer, batch=1)
    assert sorted(forms) == sorted(
        ["dense", *(f"{k} m{m}" for k in ("folded", "factored", "official", "split") for m in (1, 2, 4, 8))]
    )
    assert forms["split m2"] == [(f"split_{t}", 32, 32, 4, 3, 2, (1, 32, 8, 8)) for t in "qkv"]
    assert forms["folded m2"] == [("folded", 96, 32, 4, 3, 2, (1, 96, 8, 8))]
    assert forms["official m1"][0] == ("fc", 12, 9, 1, 1, 1, (1, 12, 8, 64))  # fc over an (hd, H*W) image
    calls = form_candidates([layer, layer], batch=1, threads=1)
    assert len(calls) == len(forms)  # the repeated layer counts once
    for call in calls.values():
        call()
    ms = {k: float(i) for i, k in enumerate(calls)}
    (row,) = fastest_forms([layer], ms).values()
    assert row["best"] == "dense" and row["ms"] == 0.0 and len(row["forms"]) == len(forms)


def test_attention_contrib_bench_compares_the_same_function():
    proc = _run("scripts/bench_attention_contrib.py", "--batches", "1", "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "MultiHeadAttention" in proc.stdout
    diff = float(proc.stdout.rsplit("max|diff| ", 1)[1].split()[0])
    assert diff < 1e-4  # the two graphs compute the same attention


def test_swin_any_graph_bound_counts_the_conv_path_of_every_block_and_finds_its_nodes():
    from onnx import helper

    sys.path.insert(0, str(ROOT / "scripts"))
    from conv_forms import ConvBranch, swin_conv_branches
    from isolated_bound import in_branch

    # Swin-T: 2/2/6/2 blocks at 56/28/14/7 px; at the fewest MACs 108 C a pixel (fc 27 C + dep_conv 81 C),
    # except at 3 heads, where the folded conv's 9 * 3 heads = 81 C is fewer
    branches = swin_conv_branches("acmix_swin_tiny")
    assert branches[0] == ConvBranch(96, 3, 56) and branches[-1] == ConvBranch(768, 24, 7) and len(branches) == 12
    assert sum(b.fewest_macs(1) for b in branches) == 81 * 96 * 56**2 * 2 + 108 * (
        192 * 28**2 * 2 + 384 * 14**2 * 6 + 768 * 7**2 * 2
    )
    assert swin_conv_branches("acmix_resnet50") is None
    conv_path = in_branch("acmix_swin", "convolution")
    assert conv_path(helper.make_node("Conv", ["x", "w"], ["y"], name="/blocks/blocks.0/attn/dep_conv/Conv", group=32))
    assert conv_path(helper.make_node("FusedConv", ["x", "w"], ["y"], name="/blocks/blocks.3/attn/f_conv/Conv"))
    assert not conv_path(helper.make_node("MatMul", ["x", "w"], ["y"], name="/blocks/blocks.0/attn/in_proj/q/MatMul"))
    assert not conv_path(helper.make_node("MatMul", ["x", "w"], ["y"], name="/blocks/blocks.0/mlp/fc1/MatMul"))


@pytest.mark.slow
def test_bench_spinning_times_both_sessions_paused_and_back_to_back():
    pytest.importorskip("onnxruntime")
    proc = _run("scripts/bench_spinning.py", "--models", "acmix_resnet26", "--batches", "1", "--rounds", "1",
                "--pause", "0.01", "--back-to-back")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "spin/no-spin" in line]
    assert len(lines) == 2 and "paused" in lines[0] and "back to back" in lines[1]


def test_bench_chunks_runs_every_chunk_size_over_the_same_images(small_artifacts):
    pytest.importorskip("onnxruntime")
    proc = _run("scripts/bench_chunks.py", "--models", "small", "--onnx", f"small={small_artifacts['onnx']}",
                "--images", "4", "--chunks", "1,4", "--rounds", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("small") and "chunk 1:" in line and "chunk 4:" in line and "(1.00x)" in line
