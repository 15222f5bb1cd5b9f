"""The optimisation profile: min/opt/max input shapes for the batch axis, within the manifest's promise.

Pure: no TensorRT here. :func:`compute_profile` decides the shapes; the builder-config stage
(:mod:`.config`) hands them to TensorRT, and the sidecar records them, so a runner knows the
batch range the engine holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from acmix_deploy.manifest import BatchSpec

from .base import BuildError


@dataclass(frozen=True)
class ProfileShapes:
    """One optimisation profile: the min/opt/max input shapes for the single image input."""

    input_name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def fixed(self) -> bool:
        """Whether the profile holds a single batch size."""
        return self.min == self.max

    def to_dict(self) -> dict:
        return {"input": self.input_name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def compute_profile(
    input_name: str,
    input_shape: Sequence[int | str | None],
    batch_limits: BatchSpec,
    *,
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int | None = None,
) -> ProfileShapes:
    """The batch profile for an (N, C, H, W) input, validated against the manifest's batch promise.

    A fixed-batch ONNX gets a fixed profile (asking for another batch is an error). A dynamic
    one gets ``min_batch <= opt <= max`` inside the manifest's ``[min, max]``; ``max`` defaults
    to the manifest's max and ``opt`` to ``max``, because TensorRT tunes its kernels for ``opt`` and
    the largest batches are where throughput is won (pass ``opt_batch=1`` for latency serving).

    Args:
        input_name: the ONNX image input.
        input_shape: its dims (``int`` static, ``str``/``None`` dynamic).
        batch_limits: the batch range the ONNX was validated for (``Manifest.batch``).
        min_batch, opt_batch, max_batch: what the caller asks for (``None``: the defaults above).

    Raises:
        BuildError: non-static non-batch dims, or batch sizes outside the limits or out of order.
    """
    shape = list(input_shape)
    if len(shape) < 2:
        raise BuildError(f"input {input_name!r} has rank {len(shape)}; expected an image batch (N, C, H, W)")
    rest = shape[1:]
    if any(not isinstance(d, int) or d <= 0 for d in rest):
        raise BuildError(f"input {input_name!r} shape {shape}: only the batch axis may be dynamic")
    rest_t = tuple(int(d) for d in rest)
    batch_dim = shape[0]
    if isinstance(batch_dim, int) and batch_dim > 0:
        for label, value in (("min", min_batch if min_batch != 1 else None), ("opt", opt_batch), ("max", max_batch)):
            if value is not None and value != batch_dim:
                raise BuildError(f"this ONNX has a fixed batch of {batch_dim}; --{label}-batch {value} differs")
        fixed = (batch_dim, *rest_t)
        return ProfileShapes(input_name, fixed, fixed, fixed)
    lo_limit, hi_limit = batch_limits.min, batch_limits.max
    hi = max_batch if max_batch is not None else hi_limit
    opt = opt_batch if opt_batch is not None else hi
    lo = min_batch
    if lo < 1:
        raise BuildError(f"min batch must be >= 1, got {lo}")
    if not lo <= opt <= hi:
        raise BuildError(f"batch sizes must satisfy min <= opt <= max, got {lo} <= {opt} <= {hi}")
    if lo < lo_limit or hi > hi_limit:
        raise BuildError(
            f"batch range {lo}..{hi} is outside what the ONNX was validated for ({lo_limit}..{hi_limit}); "
            "re-export with a larger --max-batch"
        )
    return ProfileShapes(input_name, (lo, *rest_t), (opt, *rest_t), (hi, *rest_t))


__all__ = ["ProfileShapes", "compute_profile"]
