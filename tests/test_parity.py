"""Parity reports: the measures, the pass rule, and what the compared inputs were."""

from __future__ import annotations

import numpy as np
import pytest

from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.parity import RANDOM_INPUTS, Tolerance, compare_outputs, random_inputs


def logits(seed: int, batch: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 10)).astype(np.float32)


def test_report_says_what_the_inputs_were():
    ref = logits(0)
    described = compare_outputs([ref], [ref + 1e-6], [4], Tolerance(), inputs="4 images (resize 73, crop 64)")
    assert described.inputs == "4 images (resize 73, crop 64)"
    assert described.to_dict()["inputs"] == "4 images (resize 73, crop 64)"
    default = compare_outputs([ref], [ref], [4], Tolerance())
    assert default.inputs == RANDOM_INPUTS and "normal" in RANDOM_INPUTS
    with pytest.raises(AcmixDeployError, match="non-empty"):
        compare_outputs([ref], [ref], [4], Tolerance(), inputs=" ")


def test_measures_and_pass_rule():
    ref, other = logits(1), logits(2)
    same = compare_outputs([ref[:2], ref[2:]], [ref[:2], ref[2:]], [2, 2], Tolerance())
    assert same.passed and same.max_abs_diff == 0.0 and same.top1_agreement == 1.0 and same.batches == [2, 2]
    assert same.cosine_min == pytest.approx(1.0)
    bad = compare_outputs([ref], [other], [4], Tolerance())
    assert not bad.passed and bad.max_abs_diff == pytest.approx(float(np.abs(ref - other).max()), rel=1e-6)
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert not compare_outputs([ref], [nan], [4], Tolerance(rtol=np.inf, min_cosine=-1, min_top1_agreement=0)).passed
    with pytest.raises(AcmixDeployError, match="shape"):
        compare_outputs([ref], [ref[:3]], [4], Tolerance())
    x = random_inputs(2, 8, seed=3)
    assert x.shape == (2, 3, 8, 8) and x.dtype == np.float32 and np.array_equal(x, random_inputs(2, 8, seed=3))
