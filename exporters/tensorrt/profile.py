"""The optimisation profiles: min/opt/max input shapes for the batch axis, within the manifest's promise.

Pure: no TensorRT here. :func:`compute_profile` decides one profile's shapes and
:func:`compute_profiles` several (``--profile 1:1:4 --profile 8:16:32``, parsed by
:func:`parse_profile`); the builder-config stage (:mod:`.config`) hands them to TensorRT, and the
sidecar records them all, so a runner knows which batches each holds
(:mod:`acmix_deploy.runtimes.tensorrt_profiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from acmix_deploy.manifest import BatchSpec
from acmix_deploy.runtimes.base import RunnerError
from acmix_deploy.runtimes.tensorrt_profiles import BatchRange, served_range

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

    @property
    def batches(self) -> BatchRange:
        return BatchRange(self.min[0], self.opt[0], self.max[0])

    def to_dict(self) -> dict:
        return {"input": self.input_name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def with_batches(self, batches: BatchRange) -> ProfileShapes:
        """The same input with another batch range."""
        rest = self.min[1:]
        return ProfileShapes(self.input_name, (batches.min, *rest), (batches.opt, *rest), (batches.max, *rest))


def parse_profile(text: str) -> tuple[int, int, int]:
    """``"1:4:8"`` -> ``(1, 4, 8)`` (min:opt:max batch).

    Raises:
        BuildError: not three positive integers in order.
    """
    parts = str(text).split(":")
    try:
        lo, opt, hi = (int(p) for p in parts)
    except ValueError:
        raise BuildError(f"a profile is MIN:OPT:MAX batch sizes, e.g. 1:4:8; got {text!r}") from None
    if not 1 <= lo <= opt <= hi:
        raise BuildError(f"profile {text!r} needs 1 <= MIN <= OPT <= MAX")
    return lo, opt, hi


def compute_profiles(
    input_name: str,
    input_shape: Sequence[int | str | None],
    batch_limits: BatchSpec,
    requests: Sequence[tuple[int, int, int]],
) -> list[ProfileShapes]:
    """One :class:`ProfileShapes` per ``(min, opt, max)`` request, each checked like :func:`compute_profile`.

    Raises:
        BuildError: no requests, a repeated one, or one that :func:`compute_profile` refuses.
    """
    if not requests:
        raise BuildError("at least one profile is needed")
    if len(set(requests)) != len(requests):
        raise BuildError(f"the same profile is given twice: {[':'.join(map(str, r)) for r in requests]}")
    return [
        compute_profile(input_name, input_shape, batch_limits, min_batch=lo, opt_batch=opt, max_batch=hi)
        for lo, opt, hi in requests
    ]


def served_profile(profiles: Sequence[ProfileShapes]) -> tuple[ProfileShapes, str | None]:
    """The profile-shaped batch range the engine serves (see ``tensorrt_profiles.served_range``) and its note."""
    try:
        served, note = served_range([p.batches for p in profiles])
    except RunnerError as exc:
        raise BuildError(str(exc)) from None
    return profiles[0].with_batches(served), note


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


__all__ = ["ProfileShapes", "compute_profile", "compute_profiles", "parse_profile", "served_profile"]
