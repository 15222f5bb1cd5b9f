"""This machine's fp32 GEMM floor for a model: its conv + matmul work at the best rate one GEMM reaches.

The floor answers "how fast could this model possibly run here?" with two measured numbers: the
model's multiply-accumulates (counted by torch's FlopCounterMode on the meta device: convolutions and
matrix multiplies, as ``acmix-deploy models`` lists them) and the fp32 rate of one 2048³ MatMul in
ONNX Runtime (the same session factory, with the intra-op thread count ONNX Runtime artifacts get; a
torch checkpoint runs with torch's own threads). A deploy graph's latency over its floor is a ratio
that stays meaningful on a shared machine when the probe is timed in the same interleaved rounds as
the model: load slows both. The floor is fp32's: an fp16 or int8 artifact can read below 1x. Used by
``acmix-deploy benchmark --floor`` and the benchmark scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..manifest import Manifest

GEMM_N = 2048


def gemm_probe(threads: int = 0) -> Callable[[], object]:
    """One GEMM_N³ fp32 MatMul in ONNX Runtime (B a constant initializer, as model weights are)."""
    import onnx
    from onnx import TensorProto, helper

    from acmix_deploy.runtimes.onnxruntime import ort_session

    rng = np.random.default_rng(0)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [GEMM_N, GEMM_N])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [GEMM_N, GEMM_N])],
        [onnx.numpy_helper.from_array(b, "b")],
    )
    session = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), threads=threads)
    feed = {"a": rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)}
    return lambda: session.run(None, feed)


def probe_gflops(probe_ms: float) -> float:
    """The fp32 rate (GFLOP/s) one probe call of ``probe_ms`` milliseconds shows."""
    return 2 * GEMM_N**3 / (probe_ms / 1000) / 1e9


def floor_ms(macs: int, batch: int, gflops: float) -> float:
    """Milliseconds ``batch`` images of ``macs`` multiply-accumulates each take at ``gflops``."""
    return 2 * macs * batch / (gflops * 1e9) * 1000


def manifest_macs(manifest: Manifest) -> int:
    """MACs of one image for the model an artifact was exported from (family, hparams, input size)."""
    import torch

    from ..families import get_family
    from ..models.complexity import count_model_macs

    family = get_family(manifest.family)
    with torch.device("meta"):
        model = family.build({**manifest.hparams, **family.size_overrides(manifest.img_size)})
    return count_model_macs(model, manifest.img_size)
