"""The least ACmix-ResNet's window attention can cost in ONNX Runtime's MatMul kernels, over every query block size.

Usage: .venv/bin/python scripts/bench_window_matmuls.py [--model acmix_resnet50] [--batches 1,8] [--rounds 5]
        [--threads 2] [--max-mb 256] [--max-write-mb 32] [--json out.json]

Why: ``bench_floor.py --isolated`` shows how much of ACmix-ResNet's time is its non-dense GEMM kernels
(window-attention MatMuls, grouped convs), but that is one deploy form's choice of shapes. Any
exact graph of standard ONNX operators (no Gather, no custom kernel) computes the 7x7-window logits
and the weighted sum as batched MatMuls over query blocks: b x b queries of a head against the
(s*b + k - s)² keys of the block's halo, K = head_dim. ``b = 1`` is the per-pixel (unfold) form with
49 keys a query and no waste, ``b = side`` the whole map as one block; how the halos are built
does not change the MatMul shapes. So for each ACmix layer the minimum over every block size that
divides the map, of the fastest MatMul forms (q kᵀ with k stored either way; attn v or its transpose
vᵀ attnᵀ), is the least any such graph spends in those two MatMuls, as this machine's ORT runs them.
The script also times Softmax over exactly 49 logits a query (the least softmax any graph needs),
the dense GEMM kernels of the deploy graph (``isolated_bound.py``: work every exact graph does)
and the 2048³ GEMM probe, all interleaved in the same rounds, and prints the sum against the floor.
The convolution branch enters at its fewest MACs (the official fc + dep_conv, or the two folded into
one 3x3 conv, whichever is fewer) at the probe's rate, which no grouped kernel here reaches: a
bound, not a measurement. Residual Adds, ReLUs and every copy count as free.

A second, tighter line: a block size also fixes the rows Softmax runs over (the block's halo, not
the window: without Gather, which the deploy graphs exclude, no graph compacts a row to its 49 keys)
and, when a row holds keys outside the query's window, one pass that masks them (timed as the
broadcast mask Add the deploy form uses; folding it into the first MatMul measured slower). So per
layer it also takes the minimum over block sizes of MatMuls + that Softmax + that mask.

A third line adds what the first two count as free but no graph can skip:
- the copies a block size forces. ONNX Runtime's MatMul reads dense tensors, so each block's keys and
  values (its halo, reflect padding included) must be written out once as MatMul operands, and for
  b < side the queries cut into blocks and the output put back into the map (for b = side the map is
  the one block: queries and output need no copy in the (t, h, d) channel order). Writes over
  ``--max-write-mb`` (32) are timed at that size and scaled (memory-bound, linear). Every such tensor has to be
  written by some kernel (a projection could write halos directly, but only from a copied input), so
  each is charged the cheaper of a copy (Concat of two halves: a memcpy) and a fill (ConstantOfShape)
  of its size into a bound buffer. One block (b = side) needs no copy at all: its keys are the
  unpadded map, and the reflect padding's repeated keys enter as log counts in the mask;
- the convolution branch at the fastest ORT kernel time of every exact form (``conv_forms.py``: the
  folded, factored and split convs at every group merge, the official fc + dep_conv, the dense 3x3 conv),
  reorders and transposes free, instead of its fewest MACs at the probe's rate.
A fourth line adds the positional term: the logit of key j is ``q·(k_j - pe_j)`` (up to a per-query
constant), with ``pe_j`` a function of the key's position. No kernel the MatMul operands pass through
adds it for free: ORT fuses no constant Add into its NCHWc conv (it reorders the output out, adds in
NCHW and reorders back), Pad, Slice, Concat and Transpose only copy, and ``pe_j`` cannot enter the mask
(``q·pe_j`` depends on q). Two more K channels a head (q's ``-W_pᵀq`` from the projection, k's key
coordinates) would need those coordinates appended to k, a copy of k too. So every graph writes the
k map once more: charged as the cheaper of a copy and a fill of its size, per ACmix layer.

So the fourth line is the least any graph of ORT's standard kernels spends, under three assumptions:
logits as MatMuls over query blocks (an elementwise form, one shifted k a window position, writes at
least what b = 1's unfold copy writes); every block of a layer has the same halo (cutting the border
blocks apart to drop their padded keys means more, smaller MatMuls); and no conv-branch form outside
those enumerated.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_floor import model_floor_ms
from conv_forms import ConvBranch, fastest_forms, form_candidates
from isolated_bound import (
    GEMM_KERNELS,
    WRITE_CAP_FLOATS,
    add_write_calls,
    bound_runner,
    cheapest_write_ms,
    is_dense,
    kernels_only,
    optimized_graph,
)

from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.models import build_model
from acmix_deploy.profiling.floor import gemm_probe, probe_gflops
from acmix_deploy.rewrite.acmix_block import DeployACmix
from acmix_deploy.rewrite.resnet import DeployACmixResNet
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved


def attention_layers(model_name: str, img: int = 224) -> Counter:
    """(side_out, stride, head_dim, heads, window) of every ACmix layer, with how many share it."""
    torch.manual_seed(0)
    deploy = DeployACmixResNet(build_model(model_name).eval(), img)
    return Counter(
        (m.side_out, m.stride, m.hd, m.heads, m.k_att) for m in deploy.modules() if isinstance(m, DeployACmix)
    )


def conv_branch(layer: tuple) -> ConvBranch:
    """The convolution branch of an ACmix layer ``(side_out, stride, head_dim, heads, window)``."""
    side, stride, hd, heads, _ = layer
    return ConvBranch(hd * heads, heads, side * stride, stride)


def matmul_call(a_shape: tuple, b_shape: tuple, trans_b: bool, threads: int):
    """A call computing one batched MatMul (``a @ b`` or ``a @ bᵀ``) on fixed random operands."""
    b_stored = (*b_shape[:-2], b_shape[-1], b_shape[-2]) if trans_b else b_shape
    nodes = []
    b_name = "b"
    if trans_b:
        nodes.append(helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]))
        b_name = "bt"
    nodes.append(helper.make_node("MatMul", ["a", b_name], ["c"]))
    out_shape = (*a_shape[:-1], b_shape[-1])
    graph = helper.make_graph(
        nodes,
        "mm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a_shape)),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, list(b_stored)),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, list(out_shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # ORT fuses Transpose + MatMul into one FusedMatMul (transB): the kernel a deploy graph gets
    session = ort_session(model, threads=threads)
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal(a_shape, dtype=np.float32), "b": rng.standard_normal(b_stored, dtype=np.float32)}
    return lambda: session.run(None, feed)


def _same_shape_call(node, shape: tuple, threads: int, initializers: Sequence = ()):
    """A call running one ``x -> y`` node of unchanged shape on fixed random input (Softmax, the mask Add)."""
    graph = helper.make_graph(
        [node],
        node.op_type,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        list(initializers),
    )
    session = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), threads=threads)
    feed = {"x": np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    return lambda: session.run(None, feed)


def softmax_call(shape: tuple, threads: int):
    return _same_shape_call(helper.make_node("Softmax", ["x"], ["y"], axis=-1), shape, threads)


def mask_add_call(shape: tuple, threads: int):
    """The window mask added to (N, queries, keys) logits: one constant (queries, keys) broadcast."""
    values = np.random.default_rng(1).standard_normal(shape[1:]).ravel()
    mask = helper.make_tensor("mask", TensorProto.FLOAT, list(shape[1:]), values)
    return _same_shape_call(helper.make_node("Add", ["x", "mask"], ["y"]), shape, threads, [mask])


def block_candidates(side: int, stride: int, hd: int, heads: int, window: int, batch: int, max_mb: float):
    """Per block size b dividing the map: the MatMul shapes (two logits forms, two output forms), the
    logits shape, which Softmax and (when a query's row holds more than its window) the mask cover, and
    the floats the block size forces a graph to copy (see the module docstring)."""
    for b in [d for d in range(1, side + 1) if side % d == 0]:
        n, m, halo = batch * heads * (side // b) ** 2, b * b, stride * b + window - stride
        if b == side:
            # one block: its keys are the unpadded map. A reflect-padded key repeats a map key; counted c
            # times in a query's window it weighs exp(logit + log c), so a mask of log counts (0 or -1e4
            # elsewhere) replaces the padding: no Pad, nothing copied
            halo = side * stride
        keys = halo * halo
        if n * m * keys * 4 / 2**20 > max_mb:
            continue  # logits alone over the memory cap: never the cheapest
        # written out as MatMul operands: k and v halos; for b < side also q blocks and the output
        copied = 2 * n * keys * hd + 2 * n * m * hd if b < side else 0
        yield (
            b,
            {
                "qk": ((n, m, hd), (n, hd, keys), False),
                "qk_t": ((n, m, hd), (n, hd, keys), True),
                "av": ((n, m, keys), (n, keys, hd), False),
                "va_t": ((n, hd, keys), (n, keys, m), False),
            },
            (n, m, keys),
            copied,
        )


def dense_candidates(path: Path, batch: int, threads: int, workdir: Path) -> tuple[dict, Callable[[], float]]:
    """The dense GEMM kernels two ways, run in the same rounds: cut out and unprofiled (``dense``; their
    inputs come from memory, colder than in the model) and in the model under the profiler
    (``profiled``; each kernel pays the profiler's small cost). The second item reads the in-model
    dense kernel ms per run once the rounds are over; the bound takes the smaller of the two."""
    model, shapes = optimized_graph(path, batch, threads, workdir)
    sub, inputs, outputs = kernels_only(model, shapes, GEMM_KERNELS, dense_only=True)
    initializers = {t.name for t in model.graph.initializer}
    dense_names = {n.name for n in model.graph.node if n.op_type in GEMM_KERNELS and is_dense(n, initializers)}
    profiled = ort_session(path, threads=threads, profile_prefix=workdir / "dense")
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    profiled.run(None, {"input": x})
    calls = {"dense": bound_runner(sub, inputs, outputs, threads), "profiled": lambda: profiled.run(None, {"input": x})}

    def in_model_ms() -> float:
        events = json.loads(Path(profiled.end_profiling()).read_text())
        runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
        timed = runs[2:]  # after the first call above and the rounds' warm-up
        names = {f"{n}_kernel_time" for n in dense_names}
        us = [e["dur"] for e in events if e.get("cat") == "Node" and e["ts"] >= timed[0] and e["name"] in names]
        return sum(us) / 1000.0 / len(timed)

    return calls, in_model_ms


def window_candidates(
    layers: Counter, batch: int, threads: int, max_mb: float, max_write_mb: float
) -> tuple[dict, dict, dict]:
    """Softmax over 49 logits and, per block size, the MatMul forms, the Softmax and mask Add over that
    block's logits and its copies, per ACmix layer shape; the third item is each copy's scale factor."""
    calls: dict[str, Callable[[], object]] = {}
    labels: dict[tuple, dict[int, dict[str, str]]] = {}
    scales: dict[str, float] = {}
    cap = int(max_write_mb * 2**20 / 4)
    for layer in layers:
        side, stride, hd, heads, window = layer
        calls[f"softmax{layer}"] = softmax_call((batch * heads * side * side, window * window), threads)
        # the positional term: k - pe, one write of the k map (see the module docstring)
        add_write_calls(calls, scales, f"{layer}/pe", batch * heads * hd * (side * stride) ** 2, threads, cap)
        for b, forms, logits, copied in block_candidates(*layer, batch, max_mb):
            for form, (a_shape, b_shape, trans) in forms.items():
                calls[f"{layer}/{b}/{form}"] = matmul_call(a_shape, b_shape, trans, threads)
                labels.setdefault(layer, {}).setdefault(b, {})[form] = f"{layer}/{b}/{form}"
            calls[f"{layer}/{b}/softmax"] = softmax_call(logits, threads)
            labels[layer][b]["softmax"] = f"{layer}/{b}/softmax"
            if logits[-1] > window * window:  # keys outside a query's window: masked
                calls[f"{layer}/{b}/mask"] = mask_add_call(logits, threads)
                labels[layer][b]["mask"] = f"{layer}/{b}/mask"
            if copied:
                add_write_calls(calls, scales, f"{layer}/{b}", copied, threads, cap)
                labels[layer][b]["copies"] = f"{layer}/{b}"
    return calls, labels, scales


def measure(model_name: str, path: Path, layers: Counter, batch: int, args, workdir: Path) -> dict:
    gemm = gemm_probe(args.threads)
    dense, in_model_ms = dense_candidates(path, batch, args.threads, workdir)
    windows, labels, scales = window_candidates(layers, batch, args.threads, args.max_mb, args.max_write_mb)
    branches = {layer: conv_branch(layer) for layer in layers}
    convs = form_candidates(branches.values(), batch, args.threads)
    stats = time_interleaved({"probe": gemm, **dense, **windows, **convs}, rounds=args.rounds)
    ms = {k: v.p50 * scales.get(k, 1.0) for k, v in stats.items()}
    gflops = probe_gflops(ms["probe"])
    floor = model_floor_ms(model_name, batch, gflops)
    dense_ms = {"cut out": ms["dense"], "in the model, profiled": in_model_ms()}
    fastest = fastest_forms(branches.values(), ms)
    per_layer = {}
    for layer, count in layers.items():
        per_b = {b: min(ms[f["qk"]], ms[f["qk_t"]]) + min(ms[f["av"]], ms[f["va_t"]]) for b, f in labels[layer].items()}
        # the same with what a block size also forces: Softmax over its rows, the mask when rows are longer
        with_rows = {b: per_b[b] + ms[f["softmax"]] + (ms[f["mask"]] if "mask" in f else 0.0)
                     for b, f in labels[layer].items()}  # fmt: skip
        # ... and the copies of its operands
        with_copies = {b: with_rows[b] + (cheapest_write_ms(ms, f["copies"]) if "copies" in f else 0.0)
                       for b, f in labels[layer].items()}  # fmt: skip
        best, best_rows = min(per_b, key=per_b.get), min(with_rows, key=with_rows.get)
        best_copies = min(with_copies, key=with_copies.get)
        conv = fastest[branches[layer]]
        per_layer[str(layer)] = {"count": count, "best_block": best, "ms": per_b[best], "per_block": per_b,
                                 "softmax_ms": ms[f"softmax{layer}"], "best_block_with_rows": best_rows,
                                 "ms_with_rows": with_rows[best_rows], "per_block_with_rows": with_rows,
                                 "best_block_with_copies": best_copies, "ms_with_copies": with_copies[best_copies],
                                 "per_block_with_copies": with_copies,
                                 "conv_fewest_macs_ms": 2 * branches[layer].fewest_macs(batch) / gflops / 1e6,
                                 "conv_forms_ms": conv["forms"], "conv_best_form": conv["best"],
                                 "conv_ms": conv["ms"],
                                 "pe_ms": cheapest_write_ms(ms, f"{layer}/pe")}  # fmt: skip

    def total(key: str) -> float:
        return sum(r["count"] * r[key] for r in per_layer.values())

    parts = {
        "dense": min(dense_ms.values()),
        "window MatMuls": total("ms"),
        "softmax over 49": total("softmax_ms"),
        "conv branch at the probe rate": total("conv_fewest_macs_ms"),
    }
    # the block size's own rows: its Softmax and mask (no Gather can compact a row to its 49 keys)
    rows_parts = {
        "dense": parts["dense"],
        "window MatMuls + Softmax + mask": total("ms_with_rows"),
        "conv branch at the probe rate": parts["conv branch at the probe rate"],
    }
    # ... its copies, and the conv branch at the fastest kernels of its exact forms
    copies_parts = {
        "dense": parts["dense"],
        "window MatMuls + Softmax + mask + copies": total("ms_with_copies"),
        "conv branch, fastest form": total("conv_ms"),
    }
    # ... and the positional term's write of k
    pe_parts = {**copies_parts, "positional term": total("pe_ms")}
    out = {"batch": batch, "gemm_gflops": gflops, "floor_ms": floor, "dense_ms": dense_ms, "layers": per_layer}
    for name, p in (("", parts), ("rows_", rows_parts), ("copies_", copies_parts), ("pe_", pe_parts)):
        bound = sum(p.values())
        out.update({f"{name}parts_ms": p, f"{name}bound_ms": bound, f"{name}bound_ratio": bound / floor})
    return out


def report(r: dict) -> None:
    dense = ", ".join(f"{k} {v:.1f}" for k, v in r["dense_ms"].items())
    print(
        f"batch {r['batch']}: floor {r['floor_ms']:.1f} ms at {r['gemm_gflops']:.0f} GFLOP/s; "
        f"dense GEMM kernels: {dense} ms"
    )
    print(f"  {'layer (side, stride, hd, heads, k)':<36} {'x':>2} {'best b':>6} {'ms':>7}  per b (ms)")
    for layer, row in r["layers"].items():
        for label, best, key, per in (
            ("", "best_block", "ms", "per_block"),
            ("  + its Softmax and mask", "best_block_with_rows", "ms_with_rows", "per_block_with_rows"),
            ("  + its copies", "best_block_with_copies", "ms_with_copies", "per_block_with_copies"),
        ):
            cells = " ".join(f"{b}:{t:.2f}" for b, t in row[per].items())
            count = "" if label else row["count"]
            print(f"  {label or layer:<36} {count:>2} {row[best]:>6} {row[key]:>7.2f}  {cells}")
        forms = " ".join(f"{k}:{v:.2f}" for k, v in sorted(row["conv_forms_ms"].items(), key=lambda kv: kv[1])[:4])
        print(f"  {'  conv branch, fastest forms':<36} {'':>2} {'':>6} {row['conv_ms']:>7.2f}  {forms}")
    for name, line in (
        ("", "least any standard-op graph spends"),
        ("rows_", "with each block size's own Softmax rows and mask (no Gather)"),
        ("copies_", "with its copies and the conv branch at its fastest form's kernels"),
        ("pe_", "with the positional term's write of k"),
    ):
        parts = " + ".join(f"{k} {v:.1f}" for k, v in r[f"{name}parts_ms"].items())
        bound, ratio = r[f"{name}bound_ms"], r[f"{name}bound_ratio"]
        print(f"  {line}: {parts} = {bound:.1f} ms = {ratio:.2f}x the floor", flush=True)
    print("  (residual Adds, ReLUs and every other copy counted as free)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="acmix_resnet50")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-mb", type=float, default=256.0, help="skip block sizes whose logits exceed this")
    parser.add_argument("--max-write-mb", type=float, default=WRITE_CAP_FLOATS * 4 / 2**20,
                        help="time larger writes at this size, scaled")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    layers = attention_layers(args.model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deploy.onnx"
        torch.manual_seed(0)
        export_onnx(build_model(args.model), path, img_size=224, validate=False, force=True)
        for batch in [int(b) for b in args.batches.split(",") if b]:
            results.append(measure(args.model, path, layers, batch, args, Path(tmp)))
            report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
