"""Deploy ONNX latency against this machine's fp32 GEMM floor, measured in one process.

Usage: .venv/bin/python scripts/bench_floor.py [--models acmix_resnet50,acmix_swin_tiny] [--batches 1,8]
        [--rounds 7] [--threads 2] [--onnx MODEL[:TAG]=PATH ...] [--keep DIR] [--json out.json]
        [--compare] [--bound] [--isolated] [--branches]

The floor of a model is its convolution + matrix-multiply work (MACs as ``acmix-deploy models``
counts them, times the batch) at the best fp32 rate this machine reaches: a 2048³ MatMul in
ONNX Runtime, same session factory, same thread count. The GEMM probe is timed interleaved with
the models (round after round, medians), so a neighbour's load moves the floor and the model
together and the ratio stays meaningful on a shared machine. Random official-style weights,
224 px; exports use ``validate=False`` (parity is the tests' job).

``--compare`` adds two baselines to the same rounds, each as a ratio to the same floor: the
reference model in torch eager (the official structure and numerics, ``torch.set_num_threads``
= ``--threads``) and its naive ONNX export (``acmix-deploy export --no-rewrite``) in ORT.

``--bound`` answers "how close can this graph get?" instead: it runs each model under ONNX
Runtime's node profiler (``--rounds`` profiled runs, each followed by one timed GEMM probe, so
both see the same load) and splits the kernel time into the GEMM kernels (Conv, FusedConv,
MatMul, FusedMatMul, Gemm, ORT's NCHWc Conv) and everything else. The GEMM kernels' own time
over the floor is a lower bound on the ratio that no rewrite of the other operators can beat:
``bound = gemm_kernel_ms / floor_ms``; adding the kernels the math needs in any graph (Softmax,
LayerNormalization, GELU) gives a second, tighter bound. Per GEMM shape it prints the achieved GFLOP/s against the
2048³ rate, so it shows which shapes run below the probe's rate and by how much.

``--isolated`` measures the same bound without the profiler (which slows every kernel it records,
most visibly at batch 1): the GEMM kernels are cut out of the graph ORT optimised and timed on their
own, unprofiled, interleaved with the full model and the GEMM probe (``scripts/isolated_bound.py``).

``--branches`` profiles every candidate in the same interleaved rounds (one profiled run of each
per round) and folds kernel time onto ACmix branches as ``acmix-deploy profile`` names them, so a
before/after comparison per branch sees the same load (``profile`` runs one model at a time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import isolated_bound as cut  # the kernels of the optimised graph, cut out (scripts/ is on sys.path)
from conv_forms import fastest_forms, form_candidates, swin_conv_branches

from acmix_deploy.exporters.onnx import export_onnx
from acmix_deploy.models import build_model
from acmix_deploy.models.complexity import count_macs
from acmix_deploy.profiling.floor import GEMM_N, floor_ms, gemm_probe, probe_gflops
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved


def model_floor_ms(model: str, batch: int, gflops: float) -> float:
    """The model's floor: its conv + matmul MACs (``MODEL`` or ``MODEL:TAG``) for ``batch`` images at ``gflops``."""
    return floor_ms(count_macs(model.split(":")[0], 224), batch, gflops)


def bound(name: str, path: Path, batch: int, rounds: int, threads: int) -> dict:
    """GEMM-kernel time vs total kernel time of one model (ORT profiler), and the GEMM rate alongside."""
    gemm = gemm_probe(threads)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    probe_s = []
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(path, threads=threads, profile_prefix=Path(tmp) / "ort")
        session.run(None, {"input": x})
        gemm()
        runs = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            session.run(None, {"input": x})
            runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            gemm()
            probe_s.append(time.perf_counter() - t0)
        events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted(e["ts"] + e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    skip_until = model_runs[0] if model_runs else 0  # the warm-up run
    gflops = probe_gflops(1000 * float(np.median(probe_s)))
    total_us, gemm_us, required_us, macs = 0.0, 0.0, 0.0, 0
    by_op: dict[str, float] = {}
    shapes: dict[tuple, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < skip_until:
            continue
        args = e.get("args", {})
        op = args.get("op_name", "?")
        total_us += e["dur"]
        by_op[op] = by_op.get(op, 0.0) + e["dur"]
        if op in cut.REQUIRED_KERNELS:
            required_us += e["dur"]
        if op not in cut.GEMM_KERNELS:
            continue
        ins, outs = cut.event_shapes(args, "input_type_shape"), cut.event_shapes(args, "output_type_shape")
        n = cut.kernel_macs(op, ins, outs)
        gemm_us += e["dur"]
        macs += n
        key = (op, tuple(tuple(s) for s in ins[:2]), tuple(outs[0]))
        entry = shapes.setdefault(key, {"us": 0.0, "macs": 0, "calls": 0})
        entry["us"] += e["dur"]
        entry["macs"] += n
        entry["calls"] += 1
    per_run = 1000.0 * rounds  # us summed over rounds -> ms per run
    floor = model_floor_ms(name, batch, gflops)
    rows = []
    for (op, ins, out), entry in sorted(shapes.items(), key=lambda kv: -kv[1]["us"]):
        rate = 2 * entry["macs"] / (entry["us"] / 1e6) / 1e9 if entry["us"] else 0.0
        rows.append(
            {
                "op": op,
                "inputs": [list(s) for s in ins],
                "output": list(out),
                "calls_per_run": entry["calls"] / rounds,
                "ms_per_run": entry["us"] / per_run,
                "gflops": rate,
                "vs_gemm_rate": rate / gflops,
            }
        )
    return {
        "model": name,
        "batch": batch,
        "wall_ms": 1000.0 * float(np.median(runs)),
        "kernel_ms": total_us / per_run,
        "gemm_kernel_ms": gemm_us / per_run,
        "gemm_kernel_gmac": macs / rounds / 1e9,
        "floor_ms": floor,
        "gemm_gflops": gflops,
        "bound_ratio": gemm_us / per_run / floor,
        "gemm_share": gemm_us / total_us if total_us else 0.0,
        "required_kernel_ms": required_us / per_run,
        "bound_with_required": (gemm_us + required_us) / per_run / floor,
        "by_op_ms": {k: v / per_run for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "shapes": rows,
    }


def print_bound(r: dict, top: int) -> None:
    print(
        f"{r['model']} batch {r['batch']}: wall {r['wall_ms']:.1f} ms (profiled), kernels {r['kernel_ms']:.1f} ms, "
        f"GEMM kernels {r['gemm_kernel_ms']:.1f} ms ({r['gemm_kernel_gmac']:.2f} GMAC), floor {r['floor_ms']:.1f} ms "
        f"at {r['gemm_gflops']:.0f} GFLOP/s"
    )
    print(
        f"  bound: GEMM kernels alone are {r['bound_ratio']:.2f}x the floor; every other kernel "
        f"({r['kernel_ms'] - r['gemm_kernel_ms']:.1f} ms, {1 - r['gemm_share']:.0%} of kernel time) would have "
        "to cost nothing to reach it"
    )
    print(
        f"  with the kernels the math needs in any graph (Softmax, LayerNorm, GELU: {r['required_kernel_ms']:.1f} ms): "
        f"{r['bound_with_required']:.2f}x"
    )
    print("  by op: " + ", ".join(f"{k} {v:.1f}" for k, v in list(r["by_op_ms"].items())[:10]) + " (ms)")
    print(f"  {'op':<12} {'calls':>5} {'ms':>7} {'GFLOP/s':>8} {'vs 2048^3':>9}  input shapes -> output")
    for row in r["shapes"][:top]:
        ins = " ".join("x".join(map(str, s)) for s in row["inputs"])
        print(
            f"  {row['op']:<12} {row['calls_per_run']:>5.0f} {row['ms_per_run']:>7.2f} {row['gflops']:>8.1f} "
            f"{row['vs_gemm_rate']:>8.0%}  {ins} -> {'x'.join(map(str, row['output']))}"
        )


def isolated(name: str, path: Path, batch: int, rounds: int, threads: int) -> dict:
    """Full model vs its GEMM kernels alone (and with the required kernels), unprofiled, with the probe.

    For Swin-ACmix also a bound for any exact graph: the GEMM and required kernels without the
    convolution path (the one part whose form is a choice: dense 3x3 at stage 1, folded f_conv,
    grouped dep_conv), plus that path at its fewest MACs at the probe's rate. Window attention,
    projections and MLP have the shapes the architecture fixes. A third line adds the residual sums:
    two a block, each a write of the (tokens, C) stream that no GEMM kernel here does for free (ONNX
    MatMul has no accumulator input, and ORT's Gemm copies its C into the output first), charged the
    cheaper of a memcpy and a fill of its size (``isolated_bound.write_calls``). A fourth adds each
    block's logit bias Add (``isolated_bound.logit_bias_adds``) and its heads' merge: one more write of
    the stream, since a batched MatMul's batch dims are outer, so its (head, token, head_dim) output
    must be laid out (token, head, head_dim) before ``proj`` contracts over both.
    """
    from acmix_deploy.manifest import read_manifest

    gemm = gemm_probe(threads)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    session = ort_session(path, threads=threads)
    candidates = {"probe": gemm, "model": lambda: session.run(None, {"input": x})}
    conv_path = swin_conv_branches(name)
    without = (read_manifest(path).family, "convolution") if conv_path is not None else None
    candidates.update(cut.isolated_candidates(path, batch, threads, without_branch=without))
    streams = Counter(batch * layer.side_in**2 * layer.channels for layer in conv_path or ())
    scales: dict[str, float] = {}
    if conv_path is not None:
        candidates.update(form_candidates(conv_path, batch, threads))
        for floats in streams:
            cut.add_write_calls(candidates, scales, f"stream/{floats}", floats, threads)
    stats = time_interleaved(candidates, rounds=rounds, warmup=1)
    gflops = probe_gflops(stats["probe"].p50)
    floor = model_floor_ms(name, batch, gflops)
    row = {"model": name, "batch": batch, "gemm_gflops": gflops, "floor_ms": floor}
    for label in ("model", "dense", "gemm", "gemm+required"):
        row[f"{label}_ms"] = stats[label].p50
        row[f"{label}_ratio"] = stats[label].p50 / floor
    print(
        f"{name} batch {batch}: floor {floor:.1f} ms at {gflops:.0f} GFLOP/s; model {row['model_ms']:.1f} ms "
        f"({row['model_ratio']:.2f}x); dense GEMM kernels {row['dense_ms']:.1f} ms ({row['dense_ratio']:.2f}x); "
        f"GEMM kernels alone {row['gemm_ms']:.1f} ms ({row['gemm_ratio']:.2f}x); "
        f"+ Softmax, LayerNorm, GELU {row['gemm+required_ms']:.1f} ms ({row['gemm+required_ratio']:.2f}x)",
        flush=True,
    )
    if conv_path is not None:
        rest = stats["gemm+required-convolution"].p50
        conv_ms = sum(2 * layer.fewest_macs(batch) for layer in conv_path) / (gflops * 1e9) * 1000
        fastest = fastest_forms(conv_path, {k: v.p50 for k, v in stats.items()})
        fast_ms = sum(fastest[layer]["ms"] for layer in conv_path)
        row.update(any_graph_ms=rest + conv_ms, any_graph_ratio=(rest + conv_ms) / floor,
                   fastest_forms={str(k): v for k, v in fastest.items()},
                   fastest_form_ms=rest + fast_ms, fastest_form_ratio=(rest + fast_ms) / floor)  # fmt: skip
        print(
            f"  any exact graph: those without the conv path {rest:.1f} ms + the conv path at its fewest MACs "
            f"at the probe rate {conv_ms:.1f} ms = {row['any_graph_ms']:.1f} ms ({row['any_graph_ratio']:.2f}x)",
            flush=True,
        )
        for layer, r in fastest.items():
            forms = " ".join(f"{k}:{v:.2f}" for k, v in sorted(r["forms"].items(), key=lambda kv: kv[1])[:4])
            print(f"    conv path C={layer.channels} {layer.side_in} px: fastest {forms} ms")
        print(
            f"  with the conv path at its fastest form's kernels (conv_forms.py) {fast_ms:.1f} ms: "
            f"{row['fastest_form_ms']:.1f} ms ({row['fastest_form_ratio']:.2f}x)",
            flush=True,
        )
        # one write of every block's (tokens, C) stream
        scaled = {k: stats[k].p50 * scale for k, scale in scales.items()}
        stream_ms = sum(n * cut.cheapest_write_ms(scaled, f"stream/{f}") for f, n in streams.items())
        residual_ms = 2 * stream_ms
        total = row["fastest_form_ms"] + residual_ms
        row.update(residual_ms=residual_ms, with_residual_ms=total, with_residual_ratio=total / floor)
        print(
            f"  + the residual sums' writes (two a block, the cheaper of a copy and a fill) {residual_ms:.1f} ms: "
            f"{total:.1f} ms ({row['with_residual_ratio']:.2f}x)",
            flush=True,
        )
        bias_ms = stats["logit-bias"].p50 if "logit-bias" in stats else 0.0
        total += bias_ms + stream_ms
        row.update(logit_bias_ms=bias_ms, head_merge_ms=stream_ms, with_bias_ms=total, with_bias_ratio=total / floor)
        print(
            f"  + the logit bias Adds (position bias and shift mask) {bias_ms:.1f} ms and the heads' merge "
            f"(a write of the stream, a block) {stream_ms:.1f} ms: {total:.1f} ms ({row['with_bias_ratio']:.2f}x)",
            flush=True,
        )
    return row


def branches(paths: dict[str, Path], batch: int, rounds: int, threads: int) -> dict[str, dict[str, float]]:
    """Kernel ms per ACmix branch for each candidate, profiled in the same interleaved rounds."""
    from acmix_deploy.manifest import read_manifest
    from acmix_deploy.profiling.layers import fused_kernel_scopes, graph_index, kernel_branch

    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        optimized = {m: Path(tmp) / f"o{i}.onnx" for i, m in enumerate(paths)}  # to place ORT's fused kernels
        sessions = {
            m: ort_session(p, threads=threads, profile_prefix=Path(tmp) / f"p{i}", optimized_model_path=optimized[m])
            for i, (m, p) in enumerate(paths.items())
        }
        for s in sessions.values():
            s.run(None, {"input": x})
        for _ in range(rounds):
            for s in sessions.values():
                s.run(None, {"input": x})
        for m, s in sessions.items():
            events = json.loads(Path(s.end_profiling()).read_text())
            family, index = read_manifest(paths[m]).family, graph_index(paths[m])
            fused = fused_kernel_scopes(optimized[m])
            runs = sorted(e["ts"] + e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
            parts: dict[str, float] = {}
            for e in events:
                if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < runs[0]:
                    continue
                name = e["name"].removesuffix("_kernel_time")
                op = e.get("args", {}).get("op_name", "?")
                branch = kernel_branch(fused.get(name, name), op, index, family)
                parts[branch] = parts.get(branch, 0.0) + e["dur"] / 1000.0 / rounds
            out[m] = dict(sorted(parts.items(), key=lambda kv: -kv[1]))
    return out


def export_deploy(name: str, workdir: Path, *, rewrite: bool = True) -> Path:
    """Random official-style weights (seed 0: every export of a model holds the same weights)."""
    torch.manual_seed(0)
    path = workdir / f"{name}{'' if rewrite else '.naive'}.onnx"
    export_onnx(build_model(name), path, img_size=224, validate=False, force=True, rewrite=rewrite)
    return path


def reference_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="acmix_resnet50,acmix_swin_tiny")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--onnx",
        action="append",
        default=[],
        help="MODEL=PATH: reuse an existing deploy export; MODEL:TAG=PATH adds it as one more candidate "
        "(e.g. acmix_resnet50:before=old.onnx), timed in the same rounds",
    )
    parser.add_argument("--keep", type=Path, help="write the exports to this folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--bound",
        action="store_true",
        help="instead of latency: profile each model and report its GEMM kernels' time against the floor",
    )
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="instead of latency: time the model's GEMM kernels cut out of its optimised graph, unprofiled",
    )
    parser.add_argument("--top", type=int, default=12, help="--bound: GEMM shapes listed per model")
    parser.add_argument(
        "--branches",
        action="store_true",
        help="instead of latency: kernel ms per ACmix branch, all candidates interleaved",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time the reference model in torch eager and its naive (--no-rewrite) export, same rounds",
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    batches = [int(b) for b in args.batches.split(",") if b]
    given = dict(item.split("=", 1) for item in args.onnx)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = {m: Path(given[m]) if m in given else export_deploy(m, workdir) for m in models}
        paths.update({label: Path(p) for label, p in given.items() if ":" in label})
        models = list(paths)
        if args.branches:
            result = {}
            for batch in batches:
                result[batch] = branches(paths, batch, args.rounds, args.threads)
                for m, parts in result[batch].items():
                    total = sum(parts.values())
                    cells = ", ".join(f"{b} {ms:.1f} ({ms / total:.0%})" for b, ms in parts.items())
                    print(f"batch {batch} {m}: kernels {total:.1f} ms: {cells}")
            if args.json:
                args.json.write_text(json.dumps(result, indent=2))
            return 0
        if args.bound:
            rows = []
            for batch in batches:
                for m in models:
                    rows.append(bound(m, paths[m], batch, args.rounds, args.threads))
                    print_bound(rows[-1], args.top)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2))
            return 0
        if args.isolated:
            rows = [isolated(m, paths[m], b, args.rounds, args.threads) for b in batches for m in models]
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2))
            return 0
        macs = {m: count_macs(m.split(":")[0], 224) for m in models}
        sessions = {m: ort_session(paths[m], threads=args.threads) for m in models}
        baselines: dict[str, tuple[str, object]] = {}  # label -> (model, callable(x))
        if args.compare:
            torch.set_num_threads(args.threads)
            for m in [m for m in models if ":" not in m]:
                ref = reference_model(m)
                naive = ort_session(export_deploy(m, workdir, rewrite=False), threads=args.threads)
                macs[f"{m}:torch-eager"] = macs[f"{m}:naive-export"] = macs[m]
                baselines[f"{m}:torch-eager"] = lambda x, ref=ref: ref(torch.from_numpy(x))
                baselines[f"{m}:naive-export"] = lambda x, s=naive: s.run(None, {"input": x})
        gemm = gemm_probe(args.threads)
        rows = []
        for batch in batches:
            x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            candidates = {"gemm": gemm}
            for m in models:
                candidates[m] = lambda s=sessions[m], x=x: s.run(None, {"input": x})
            for label, fn in baselines.items():
                candidates[label] = lambda fn=fn, x=x: fn(x)
            with torch.no_grad():
                stats = time_interleaved(candidates, rounds=args.rounds, warmup=1)
            gemm_ms = stats["gemm"].p50
            gflops = probe_gflops(gemm_ms)
            print(
                f"batch {batch}: fp32 GEMM {GEMM_N}^3 {gemm_ms:.1f} ms = {gflops:.0f} GFLOP/s ({args.threads} threads)"
            )
            for m in [*models, *baselines]:
                floor = model_floor_ms(m, batch, gflops)
                ms = stats[m].p50
                rows.append(
                    {
                        "model": m,
                        "batch": batch,
                        "ms": ms,
                        "floor_ms": floor,
                        "ratio": ms / floor,
                        "gmac": macs[m] / 1e9,
                        "gemm_gflops": gflops,
                    }
                )
                print(
                    f"  {m:<26} {ms:8.1f} ms   floor {floor:7.1f} ms ({macs[m] / 1e9:.2f} GMAC/img)"
                    f"   ratio {ms / floor:5.2f}x"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
