"""Would an ONNX Runtime-only form pay? ORT's fused MultiHeadAttention against the standard-operator window attention.

Usage: .venv/bin/python scripts/bench_attention_contrib.py [--batches 1,8] [--rounds 21] [--threads 2]

#15 allows an optional ORT-only artifact (contrib operators) only if it is measured faster. The one
contrib kernel that fits ACmix-ResNet's window attention is ``com.microsoft.MultiHeadAttention`` on
CPU (q kᵀ + additive bias, softmax and the weighted sum in one kernel, with key/value in BNSH
layout, as the halos already are). This times it against the deploy form's four standard operators
(MatMul with kᵀ, Add of the window mask, Softmax, MatMul) on the shapes of ACmix-ResNet-50's largest
attention: stage 1 at 224 px, 49 blocks of 8x8 queries against 14x14 halo keys, 4 heads of 16
channels, a random 0/-1e4 mask; same inputs, outputs compared, interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acmix_deploy.runtimes.onnxruntime import ort_session
from acmix_deploy.timing import time_interleaved

HEADS, QUERIES, KEYS, HEAD_DIM, BLOCKS = 4, 64, 196, 16, 49


def _info(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def sessions(batch: int, threads: int):
    """(standard session, contrib session, feeds for each, the mask) for one batch."""
    n = batch * BLOCKS
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n, HEADS, s, HEAD_DIM), dtype=np.float32) for s in (QUERIES, KEYS, KEYS))
    mask = np.where(rng.random((QUERIES, KEYS)) < 0.25, 0.0, -1e4).astype(np.float32)
    standard = helper.make_graph(
        [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["logits"]),
            helper.make_node("Add", ["logits", "mask"], ["masked"]),
            helper.make_node("Softmax", ["masked"], ["attn"], axis=-1),
            helper.make_node("MatMul", ["attn", "v"], ["out"]),
        ],
        "standard",
        [_info("q", q.shape), _info("k", k.shape), _info("v", v.shape)],
        [_info("out", (n, HEADS, QUERIES, HEAD_DIM))],
        [helper.make_tensor("mask", TensorProto.FLOAT, list(mask.shape), mask.ravel())],
    )
    fused = helper.make_graph(
        [
            helper.make_node(
                "MultiHeadAttention", ["q", "k", "v", "", "", "bias"], ["out"], domain="com.microsoft",
                num_heads=HEADS, scale=1.0,
            )
        ],
        "contrib",
        [_info("q", (n, QUERIES, HEADS * HEAD_DIM)), _info("k", k.shape), _info("v", v.shape)],
        [_info("out", (n, QUERIES, HEADS * HEAD_DIM))],
        [helper.make_tensor("bias", TensorProto.FLOAT, [1, 1, QUERIES, KEYS], mask.ravel())],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    s_standard = ort_session(helper.make_model(standard, opset_imports=opsets[:1]), threads=threads)
    s_fused = ort_session(helper.make_model(fused, opset_imports=opsets), threads=threads)
    q_bsd = np.ascontiguousarray(q.transpose(0, 2, 1, 3).reshape(n, QUERIES, HEADS * HEAD_DIM))
    return s_standard, s_fused, {"q": q, "k": k, "v": v}, {"q": q_bsd, "k": k, "v": v}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for batch in [int(b) for b in args.batches.split(",") if b]:
        s_standard, s_fused, feed_standard, feed_fused = sessions(batch, args.threads)
        a = s_standard.run(None, feed_standard)[0]
        b = s_fused.run(None, feed_fused)[0].reshape(a.shape[0], QUERIES, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)
        stats = time_interleaved(
            {
                "standard": lambda s=s_standard, f=feed_standard: s.run(None, f),
                "contrib": lambda s=s_fused, f=feed_fused: s.run(None, f),
            },
            rounds=args.rounds,
        )
        std, fused = stats["standard"].p50, stats["contrib"].p50
        print(
            f"batch {batch}: standard operators {std:.2f} ms, MultiHeadAttention {fused:.2f} ms "
            f"({std / fused:.2f}x), max|diff| {np.abs(a - b).max():.2e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
