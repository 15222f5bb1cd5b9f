"""Parity of an exported artifact against the torch reference: the proof that export kept the function.

The reference is the *original* model (before deploy rewrites), so the check covers the rewrite,
the exporter and the graph passes at once. Failing parity is an error, not a warning: an
artifact with wrong logits must not ship.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.parity import ParityReport, Tolerance, compare_outputs, random_inputs


class ParityError(AcmixDeployError):
    """The artifact's outputs differ from the reference beyond tolerance."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


def check_parity(
    reference: torch.nn.Module,
    run_candidate: Callable[[np.ndarray], np.ndarray],
    *,
    img_size: int,
    batches: Sequence[int],
    tolerance: Tolerance = Tolerance(),
    seed: int = 0,
) -> ParityReport:
    """Compare the candidate at each batch size against one reference run at the largest of them.

    The reference (torch eager, the official structure: ~1 s an image at 224 px for ACmix-ResNet-50)
    runs once, on ``max(batches)`` seeded inputs; the candidate runs at every batch size on the
    first ``b`` rows of those inputs and is compared with the first ``b`` rows of that one output.
    In eval mode rows are independent (BatchNorm uses its running statistics), so a row's reference
    logits do not depend on the batch it ran in, and running the reference per batch only repeated
    work: the candidate is still proven at each batch size, which is what catches batch-dependent
    graph bugs. A module in training mode is refused, since its rows are not independent.

    Raises:
        AcmixDeployError: no batch sizes, a batch below 1, or a reference in training mode.
    """
    sizes = [int(b) for b in batches]
    if not sizes or min(sizes) < 1:
        raise AcmixDeployError(f"parity needs batch sizes >= 1, got {sizes}")
    if reference.training:
        raise AcmixDeployError("the parity reference must be in eval mode (its rows are compared independently)")
    x = random_inputs(max(sizes), img_size, seed)
    with torch.no_grad():
        ref = reference(torch.from_numpy(x)).numpy()
    outs = [np.asarray(run_candidate(x[:b])) for b in sizes]
    return compare_outputs([ref[:b] for b in sizes], outs, sizes, tolerance)


__all__ = ["ParityError", "ParityReport", "Tolerance", "check_parity", "compare_outputs", "random_inputs"]
