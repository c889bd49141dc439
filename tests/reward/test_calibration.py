"""Quantile calibration against a known true reward: hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtrec.reward.calibration import (
    calibration_report,
    fit_affine_map,
    interpolate_quantile,
    interval_overlap,
    quantile_levels,
)


def test_quantile_levels_are_midpoints():
    assert np.allclose(
        quantile_levels(10), [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    )
    assert np.allclose(quantile_levels(1), [0.5])
    with pytest.raises(ValueError):
        quantile_levels(0)


def test_interpolation_between_midpoints():
    # N = 10, quantile k at tau_k holds the value k: q(0.10) lies halfway
    # between tau_1 = 0.05 (1) and tau_2 = 0.15 (2) -> 1.5; q(0.9) -> 9.5.
    row = np.arange(1.0, 11.0)[None, :]
    assert interpolate_quantile(row, 0.10)[0] == pytest.approx(1.5)
    assert interpolate_quantile(row, 0.90)[0] == pytest.approx(9.5)
    assert interpolate_quantile(row, 0.05)[0] == pytest.approx(1.0)
    assert interpolate_quantile(row, 0.95)[0] == pytest.approx(10.0)
    assert interpolate_quantile(row, 0.50)[0] == pytest.approx(5.5)
    # Unsorted input is sorted first.
    assert interpolate_quantile(row[:, ::-1], 0.10)[0] == pytest.approx(1.5)
    with pytest.raises(ValueError):
        interpolate_quantile(row, 0.01)


def test_affine_map_matches_mean_and_std():
    learned = np.array([0.0, 1.0, 2.0])  # mean 1, std sqrt(2/3)
    target = np.array([10.0, 14.0, 12.0])  # mean 12, std sqrt(8/3)
    scale, shift = fit_affine_map(learned, target)
    assert scale == pytest.approx(2.0)  # positive even though the order differs
    assert shift == pytest.approx(10.0)
    assert all(math.isnan(v) for v in fit_affine_map(np.ones(3), target))


def test_interval_overlap_is_the_covered_share_of_the_true_interval():
    # [0, 2] covers half of [1, 3]; [0, 10] all of [1, 3]; [5, 6] none of [1, 3].
    assert interval_overlap([0.0], [2.0], [1.0], [3.0]) == pytest.approx(0.5)
    assert interval_overlap([0.0, 5.0], [10.0, 6.0], [1.0, 1.0], [3.0, 3.0]) == pytest.approx(0.5)
    assert math.isnan(interval_overlap([0.0], [1.0], [2.0], [2.0]))


def test_report_maps_then_counts_rewards_inside_the_central_intervals():
    # Two quantiles (tau 0.25, 0.75) reach the central 20%, 40% and 50% intervals
    # (levels inside [0.25, 0.75]) but not the 80% one.
    # Fit rows: learned means 0 and 2 against true rewards 1 and 5 -> scale 2, shift 1.
    quantiles = np.array(
        [
            [-1.0, 1.0],  # fit: mean 0
            [1.0, 3.0],  # fit: mean 2
            [0.0, 1.0],  # eval: mapped [1, 3]; 40% interval (levels 0.3, 0.7) [1.2, 2.8] holds 2.0
            [0.0, 1.0],  # eval: same interval; 2.9 outside the 40% interval
            [0.0, 1.0],  # eval: NaN truth, ignored
        ]
    )
    true_reward = np.array([1.0, 5.0, 2.0, 2.9, np.nan])
    fit = np.array([True, True, False, False, False])
    report = calibration_report(quantiles, true_reward, fit, ~fit, coverages=(0.4, 0.5, 0.8))
    assert report["scale"] == pytest.approx(2.0) and report["shift"] == pytest.approx(1.0)
    assert report["n_fit"] == 2 and report["n_eval"] == 2
    assert report["coverage_0.4"] == pytest.approx(0.5)
    assert report["width_0.4"] == pytest.approx(1.6)
    assert report["coverage_0.5"] == pytest.approx(1.0)  # [1, 3] holds 2.0 and 2.9
    assert math.isnan(report["coverage_0.8"])  # level 0.1 below tau_1 = 0.25


def test_report_with_the_true_distribution_reports_overlap():
    # Learned mapped interval [1, 3] (50%) against a true N(2, s): the true 50%
    # interval is 2 -/+ 0.6745 s; with s = 1/0.6745 it is exactly [1, 3].
    quantiles = np.array([[-1.0, 1.0], [1.0, 3.0], [0.0, 1.0]])
    true_reward = np.array([1.0, 5.0, 2.0])
    fit = np.array([True, True, False])
    s = 1.0 / 0.6744897501960817
    report = calibration_report(
        quantiles,
        true_reward,
        fit,
        ~fit,
        coverages=(0.5,),
        true_mean=np.array([0.0, 0.0, 2.0]),
        true_std=np.array([1.0, 1.0, s]),
    )
    assert report["true_width_0.5"] == pytest.approx(2.0)
    assert report["overlap_true_0.5"] == pytest.approx(1.0)
