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


def test_error_percentiles_of_abs_and_relative_error():
    from acmix_deploy.parity import REL_ERROR_FLOOR, error_percentiles

    ref = np.array([[10.0, 1.0, 0.0, -5.0], [2.0, -2.0, 0.5, 0.001]], np.float32)
    out = ref + np.array([[0.1, 0.01, 0.002, -0.05], [0.0, 0.02, 0.005, 0.001]], np.float32)
    report = compare_outputs([ref], [out], [2], Tolerance(rtol=1.0, min_cosine=0.9))
    diff = np.abs(out.astype(np.float64) - ref)
    assert report.abs_error == pytest.approx({f"p{q}": np.percentile(diff, q) for q in (50, 90, 99)})
    # the zero logit of sample 0 is measured against 1e-3 of that sample's largest (10), not against 0
    floor = np.maximum(np.abs(ref), REL_ERROR_FLOOR * np.abs(ref).max(1, keepdims=True))
    assert floor[0, 2] == pytest.approx(0.01) and floor[1, 3] == pytest.approx(0.002)
    rel = diff / floor
    assert report.rel_error == pytest.approx({f"p{q}": np.percentile(rel, q) for q in (50, 90, 99)})
    assert report.rel_error["p99"] < 1.0  # a plain |a-b|/|b| would be infinite at the zero logit
    assert error_percentiles(ref, ref) == ({"p50": 0.0, "p90": 0.0, "p99": 0.0}, {"p50": 0.0, "p90": 0.0, "p99": 0.0})
    assert set(report.to_dict()) >= {"abs_error", "rel_error"} and "p99" in report.describe_errors()


def test_loosest_and_precision_tables_keep_bounds_that_can_fail():
    from acmix_deploy.parity import INT8_RANDOM_INPUTS_TOLERANCE, PRECISION_TOLERANCES

    loose = Tolerance().loosest(PRECISION_TOLERANCES["int8"])
    assert loose == PRECISION_TOLERANCES["int8"]
    for tolerance in (*PRECISION_TOLERANCES.values(), INT8_RANDOM_INPUTS_TOLERANCE):
        assert np.isfinite(tolerance.rtol) and tolerance.min_cosine > 0
    ref = logits(5)
    assert not compare_outputs([ref], [-ref], [4], INT8_RANDOM_INPUTS_TOLERANCE).passed  # gross breakage fails
