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
    """Run both on the same seeded inputs at each batch size and compare."""
    refs, outs = [], []
    for i, batch in enumerate(batches):
        x = random_inputs(batch, img_size, seed + i)
        with torch.no_grad():
            refs.append(reference(torch.from_numpy(x)).numpy())
        outs.append(np.asarray(run_candidate(x)))
    return compare_outputs(refs, outs, list(batches), tolerance)


__all__ = ["ParityError", "ParityReport", "Tolerance", "check_parity", "compare_outputs", "random_inputs"]
