"""The int8 ceiling of this CPU: ONNX Runtime's int8 GEMM/conv kernels alone vs their fp32 kernels.

Usage: .venv/bin/python scripts/bench_int8_kernels.py [--rounds 15] [--batches 1,8]

Why: issue #7 asks int8 (cpu target) to run >= 1.7x faster than fp32 for the whole model. A whole
model cannot beat its int8 kernels: quantize/dequantize steps only add time, and the
non-GEMM work (softmax, layer norm, the attention mask, data movement) stays in float. So this
script times the kernels by themselves, already-quantized uint8 activations in and out, at the
shapes that dominate ACmix-Swin-T and ACmix-ResNet-50 at 224 px. Where these pure-kernel
ratios are below 1.7x, no int8 form of the model reaches 1.7x on this CPU with ONNX Runtime.

Each op is a one-node ONNX graph; fp32 and int8 sessions of one shape are timed interleaved
in one process (medians). The last column weights each shape by its share of the model's
use count per image. With ``--onnx MODEL.onnx`` it also profiles our fp32 export, measures the share
of time in GEMM-like kernels, and prints Amdahl's bound: the model's speed-up if every one of those
kernels ran as fast as the int8 kernels above (their time-weighted speed-up, and the single best
one) while quantization cost nothing.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.manifest import ManifestError, read_manifest
from acmix_deploy.profiling.layers import profile_onnx
from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved

# (name, M tokens per image, K, N, uses per image) — Swin-T-ACmix linear layers at 224 px
# (qkv, proj, mlp fc1/fc2 per block; depths 2, 2, 6, 2; tokens 56², 28², 14², 7²).
SWIN_T_LINEARS = [
    ("s1 qkv 96->288", 3136, 96, 288, 2),
    ("s1 mlp 96->384", 3136, 96, 384, 2),
    ("s1 mlp 384->96", 3136, 384, 96, 2),
    ("s2 qkv 192->576", 784, 192, 576, 2),
    ("s2 mlp 192->768", 784, 192, 768, 2),
    ("s3 qkv 384->1152", 196, 384, 1152, 6),
    ("s3 mlp 384->1536", 196, 384, 1536, 6),
    ("s3 mlp 1536->384", 196, 1536, 384, 6),
    ("s4 mlp 768->3072", 49, 768, 3072, 2),
]

# (name, C_in, C_out, kernel, H=W) — ACmix-ResNet-50 convolutions at 224 px (stride 1 forms).
R50_CONVS = [
    ("l1 1x1 256->64", 256, 64, 1, 56),
    ("l1 3x3 64->64 (conv path)", 64, 64, 3, 56),
    ("l2 1x1 512->128", 512, 128, 1, 28),
    ("l3 1x1 1024->256", 1024, 256, 1, 14),
    ("l3 3x3 256->256 (conv path)", 256, 256, 3, 14),
]


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "kernel", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _scalar(name: str, value, dtype) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _kernel_pair(op: str, w: np.ndarray, x_shape: list[int], y_shape: list[int], rng, **attrs):
    """One-node fp32 ``op`` and its QLinear form (u8 activations, s8 symmetric weights: the CPU target's
    form), with random inputs for each: (fp32 model, int8 model, fp32 input, uint8 input)."""
    fp32 = _model(
        [helper.make_node(op, ["x", "w"], ["y"], **attrs)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(w, "w")],
    )
    w8 = np.clip(np.round(w / (np.abs(w).max() / 127)), -127, 127).astype(np.int8)
    inits = [
        numpy_helper.from_array(w8, "w"),
        _scalar("xs", 0.02, np.float32),
        _scalar("xz", 128, np.uint8),
        _scalar("ws", 0.01, np.float32),
        _scalar("wz", 0, np.int8),
        _scalar("ys", 0.05, np.float32),
        _scalar("yz", 128, np.uint8),
    ]
    int8 = _model(
        [helper.make_node(f"QLinear{op}", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], **attrs)],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, y_shape)],
        inits,
    )
    x32 = rng.standard_normal(x_shape).astype(np.float32)
    x8 = rng.integers(0, 255, x_shape, dtype=np.uint8)
    return fp32, int8, x32, x8


def matmul_pair(m: int, k: int, n: int, rng) -> tuple[onnx.ModelProto, onnx.ModelProto, np.ndarray, np.ndarray]:
    """fp32 MatMul and QLinearMatMul of one shape."""
    w = rng.standard_normal((k, n)).astype(np.float32)
    return _kernel_pair("MatMul", w, [m, k], [m, n], rng)


def conv_pair(batch: int, cin: int, cout: int, kernel: int, size: int, rng):
    """fp32 Conv and QLinearConv of one shape (same-size padding)."""
    w = rng.standard_normal((cout, cin, kernel, kernel)).astype(np.float32)
    pads = [kernel // 2] * 4
    return _kernel_pair("Conv", w, [batch, cin, size, size], [batch, cout, size, size], rng, pads=pads)


def _time_pair(fp32, int8, x32, x8, rounds: int) -> tuple[float, float]:
    s32, s8 = ort_session(fp32), ort_session(int8)
    stats = time_interleaved(
        {"fp32": lambda: s32.run(None, {"x": x32}), "int8": lambda: s8.run(None, {"x": x8})},
        rounds=rounds,
        warmup=2,
    )
    return stats["fp32"].p50, stats["int8"].p50


# Kernels int8 can replace. Everything else (Softmax, LayerNormalization, Add, Mul, masks, layout) stays float.
GEMM_OPS = {"Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "FusedGemm"}


def amdahl_bound(onnx_path: Path, batch: int, weighted: float, best: float) -> str:
    """The whole model's int8 speed-up if every GEMM-like kernel ran faster and quantizing cost nothing.

    Two bounds: every GEMM-like kernel as fast as the model's own time-weighted kernel speed-up
    (realistic), and as fast as the single best kernel measured (generous).
    """
    try:
        manifest = read_manifest(onnx_path)
    except ManifestError as exc:
        raise SystemExit(f"not an acmix-deploy export: {exc}") from None
    profile = profile_onnx(onnx_path, manifest, iterations=5, batch=batch)
    gemm = sum(ms for op, ms in profile.by_op.items() if op in GEMM_OPS)
    share = gemm / profile.total_ms

    def bound(speedup: float) -> float:
        return 1.0 / ((1.0 - share) + share / speedup)

    return (
        f"{onnx_path.name} batch {batch}: GEMM-like kernels {gemm:.1f} of {profile.total_ms:.1f} ms "
        f"({100 * share:.0f}%) -> at most {bound(weighted):.2f}x with its kernels' weighted {weighted:.2f}x, "
        f"{bound(best):.2f}x if all ran at the best kernel's {best:.2f}x"
    )


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = sorted(set(re.findall(r"\b(avx512_vnni|avx_vnni|avx512f|avx2)\b", text)))
    return " ".join(flags) or "none of avx2/avx512f/vnni"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument(
        "--onnx", type=Path, action="append", default=[], help="fp32 ONNX (ours) to bound with Amdahl's law; repeatable"
    )
    args = parser.parse_args()
    import onnxruntime

    print(
        f"CPU: {platform.processor() or platform.machine()}, flags: {_cpu_flags()}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    rng = np.random.default_rng(0)
    best: dict[int, float] = {}
    weighted: dict[tuple[int, str], float] = {}
    for batch in (int(b) for b in args.batches.split(",")):
        for title, rows in (
            ("Swin-T linears (MatMul vs QLinearMatMul)", SWIN_T_LINEARS),
            ("R50 convs (Conv vs QLinearConv)", R50_CONVS),
        ):
            print(f"\nbatch {batch}: {title}")
            print(f"{'shape':28s} {'fp32 ms':>9s} {'int8 ms':>9s} {'speed-up':>9s}")
            total32 = total8 = 0.0
            for row in rows:
                if rows is SWIN_T_LINEARS:
                    name, m, k, n, uses = row
                    pair = matmul_pair(m * batch, k, n, rng)
                else:
                    name, cin, cout, kernel, size = row
                    uses = 1
                    pair = conv_pair(batch, cin, cout, kernel, size, rng)
                t32, t8 = _time_pair(*pair, rounds=args.rounds)
                total32 += uses * t32
                total8 += uses * t8
                print(f"{name:28s} {t32:9.3f} {t8:9.3f} {t32 / t8:8.2f}x")
                best[batch] = max(best.get(batch, 0.0), t32 / t8)
            print(f"{'time-weighted (model share)':28s} {total32:9.3f} {total8:9.3f} {total32 / total8:8.2f}x")
            weighted[batch, "swin" if rows is SWIN_T_LINEARS else "resnet"] = total32 / total8
    if args.onnx:
        print("\nAmdahl bound (GEMM-like kernels sped up as measured above, everything else unchanged):")
    for path in args.onnx:
        family = "swin" if "swin" in path.name.lower() else "resnet"
        for batch, speedup in best.items():
            print(amdahl_bound(path, batch, weighted[batch, family], speedup))


if __name__ == "__main__":
    main()
