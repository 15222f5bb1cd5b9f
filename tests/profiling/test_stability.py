"""Stability windows, warm-up and speed verdicts: the pure logic, fed synthetic medians and samples."""

from __future__ import annotations

import itertools

import pytest

from acmix_deploy.profiling.plot import nice_ticks
from acmix_deploy.timing import (
    SpeedComparison,
    compare_speed,
    speed_verdict,
    stability_reached,
    time_windows,
    warm_up,
)


def test_stability_needs_every_candidates_last_two_windows_within_the_target():
    assert not stability_reached([[10.0]], 5)  # one window cannot agree with anything
    assert stability_reached([[12.0, 10.0, 10.4]], 5)  # 4% apart: the earlier, unsettled window is ignored
    assert not stability_reached([[10.0, 10.6]], 5)  # 6% apart
    assert not stability_reached([[10.0, 10.1], [5.0, 5.5]], 5)  # the noisier candidate decides
    assert stability_reached([[10.0, 10.1], [5.0, 5.2]], 5)
    assert not stability_reached([], 5)


def test_windows_repeat_until_stable_or_flag_unstable_after_max_windows():

    def fake_call() -> None:  # not timed by us: time_windows measures it; we only check the window logic
        pass

    # stability off: exactly one window
    off = time_windows([fake_call], rounds=3, warmup_rounds=0)
    assert off.stable is None and len(off.window_samples) == 1 and off.stability_dict()["status"] == "off"
    # an impossible target (0%) on a real call: bounded by max_windows, reported unstable
    unstable = time_windows([fake_call, fake_call], rounds=2, warmup_rounds=0, stability_pct=0.0, max_windows=3)
    assert len(unstable.window_samples) == 3 and unstable.stable is False
    assert unstable.stability_dict() == {
        "target_pct": 0.0,
        "max_windows": 3,
        "windows": 3,
        "reached": False,
        "status": "unstable",
    }
    assert [len(m) for m in unstable.window_medians] == [3, 3]
    assert [len(s) for s in unstable.samples] == [4, 4]  # statistics from the last two windows


def test_warm_up_runs_both_at_least_the_rounds_and_the_seconds():
    calls = []
    done = warm_up([lambda: calls.append("a"), lambda: calls.append("b")], rounds=3, seconds=0.0)
    assert done.rounds == 3 and calls == ["a", "b"] * 3
    timed = warm_up([lambda: None], rounds=0, seconds=0.05)
    assert timed.rounds >= 1 and timed.seconds >= 0.05


def test_speed_verdict_only_outside_the_measured_noise():
    steady = [0.010] * 8
    assert compare_speed(steady, [0.005] * 8).verdict == "faster"
    assert compare_speed(steady, [0.020] * 8).verdict == "slower"
    # candidate 10% slower by the medians, but round to round it swings +-50%: no verdict
    noisy = [0.011 * f for f in itertools.islice(itertools.cycle([0.5, 1.0, 1.5, 1.0]), 8)]
    noisy_cmp = compare_speed(steady, noisy)
    assert noisy_cmp.ratio == pytest.approx(1 / 1.1) and noisy_cmp.verdict == "within noise"
    assert speed_verdict(noisy_cmp, "fp32").startswith("0.91x, within noise (±")
    # the per-window ratios disagreeing widens the noise even when each window was steady
    windows = compare_speed(steady, [0.009] * 8, window_medians=([10.0, 10.0, 10.0], [8.0, 9.0, 10.0]))
    assert windows.noise == pytest.approx((10 / 8 - 1.0) / 2 / (10 / 9)) and windows.verdict == "within noise"
    assert speed_verdict(SpeedComparison(1.45, 0.04), "fp32") == "1.45x, faster than fp32 (noise ±4%)"
    assert speed_verdict(SpeedComparison(0.6, 0.04)) == "0.60x slower"
    assert speed_verdict(SpeedComparison(0.9, 0.12)) == "0.90x ±12%"
    assert speed_verdict(SpeedComparison(0.9, None), "fp32") == "0.90x vs fp32 (noise not measured)"
    assert compare_speed([0.01] * 3, [0.02] * 3).noise is None  # too few rounds to bound it


def test_plot_ticks_are_round_and_cover_the_data():
    assert nice_ticks(9.3) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(420.0) == [0, 100, 200, 300, 400, 500]
    assert nice_ticks(0.0) == [0.0, 1.0]
