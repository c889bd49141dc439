"""Calibration of the learned reward quantiles against a known true reward (simulator).

The IRL reward is identified only up to a shift and scale, so its quantiles
cannot be compared with the true reward directly. The honest comparison
first puts them on the true reward's scale with ONE affine map per model,
fitted on the fitting rows (train positives), matching the mean and std of
the learned mean reward to those of the true reward (a positive scale, so
the quantiles keep their order; least squares would shrink the scale by the
correlation and make every interval look too narrow). On held-out rows the
mapped central intervals are then checked against the realised true rewards:
a calibrated model puts 80% of them inside its [q10%, q90%].

Quantile k of N sits at level tau_k = (2k - 1) / 2N (QR-DQN's midpoints); any
other level in [tau_1, tau_N] is linearly interpolated between neighbours.
Levels outside that range are not extrapolated (ValueError).

Where the true reward distribution of each exposure is known (the simulator:
mean plus item-specific Gaussian noise), `interval_overlap` measures how much
of the TRUE central interval the learned one covers.
"""

from __future__ import annotations

import numpy as np

from mtrec.evaluation.metrics import interval_coverage

# Nominal central coverages reported by default: [q(0.5 - c/2), q(0.5 + c/2)].
CENTRAL_COVERAGES = (0.2, 0.4, 0.6, 0.8, 0.9)


def quantile_levels(n_quantiles: int) -> np.ndarray:
    """tau_k = (2k - 1) / 2N for k = 1..N -> [N]."""
    if n_quantiles < 1:
        raise ValueError(f"n_quantiles must be >= 1, got {n_quantiles}")
    return (2.0 * np.arange(1, n_quantiles + 1) - 1.0) / (2.0 * n_quantiles)


def interpolate_quantile(quantiles: np.ndarray, level: float) -> np.ndarray:
    """The `level` quantile of each row of `quantiles` [R, N] (at tau_k) -> [R].

    Rows are sorted first (the network's quantiles do not cross, but a
    guarantee costs nothing). Linear between neighbouring tau_k.
    """
    values = np.sort(np.asarray(quantiles, dtype=float), axis=1)
    taus = quantile_levels(values.shape[1])
    if not taus[0] - 1e-12 <= level <= taus[-1] + 1e-12:
        raise ValueError(
            f"level {level} outside [{taus[0]:g}, {taus[-1]:g}]: N = {values.shape[1]} "
            "quantiles do not reach it and it is not extrapolated"
        )
    if len(taus) == 1:
        return values[:, 0]
    upper = min(max(int(np.searchsorted(taus, level)), 1), len(taus) - 1)
    lower = upper - 1
    weight = (level - taus[lower]) / (taus[upper] - taus[lower])
    return (1.0 - weight) * values[:, lower] + weight * values[:, upper]


def fit_affine_map(learned: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(scale, shift) with scale * learned + shift matching target's mean and std.

    scale > 0 always (NaN when `learned` is constant or empty: no map exists).
    """
    learned = np.asarray(learned, dtype=float)
    target = np.asarray(target, dtype=float)
    if len(learned) != len(target):
        raise ValueError("learned and target must have the same length")
    if len(learned) < 2 or np.std(learned) == 0:
        return float("nan"), float("nan")
    scale = float(np.std(target) / np.std(learned))
    shift = float(np.mean(target) - scale * np.mean(learned))
    return scale, shift


def interval_overlap(
    lower: np.ndarray, upper: np.ndarray, true_lower: np.ndarray, true_upper: np.ndarray
) -> float:
    """Mean share of each true interval [true_lower, true_upper] that [lower, upper]
    covers (1: the learned interval contains the true one). NaN on empty input;
    rows whose true interval has zero width are skipped."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    true_lower, true_upper = np.asarray(true_lower, float), np.asarray(true_upper, float)
    width = true_upper - true_lower
    keep = width > 0
    if not keep.any():
        return float("nan")
    inside = np.clip(np.minimum(upper, true_upper) - np.maximum(lower, true_lower), 0.0, None)
    return float(np.mean(inside[keep] / width[keep]))


def calibration_report(
    quantiles: np.ndarray,
    true_reward: np.ndarray,
    fit_rows: np.ndarray,
    eval_rows: np.ndarray,
    coverages: tuple[float, ...] = CENTRAL_COVERAGES,
    true_mean: np.ndarray | None = None,
    true_std: np.ndarray | None = None,
) -> dict[str, float]:
    """Coverage of the learned central intervals, mapped to the true scale.

    quantiles [R, N] learned reward quantiles (at tau_k) of every row,
    true_reward [R] realised true reward (NaN rows are ignored),
    fit_rows / eval_rows [R] bool: rows that fit the affine map / are scored.
    With true_mean and true_std [R] (a Gaussian true reward per row, as in the
    simulator), also the share of the TRUE central interval the learned one covers.

    Keys: scale, shift, n_fit, n_eval, coverage_<c> for each nominal c (e.g.
    coverage_0.8 for [q10%, q90%]), width_<c> (mean mapped width), and, with the
    truth, true_width_<c> and overlap_true_<c>. A level the N quantiles do not
    reach (c > 1 - 1/N) or a map that does not exist gives NaN.
    """
    quantiles = np.asarray(quantiles, dtype=float)
    true_reward = np.asarray(true_reward, dtype=float)
    known = np.isfinite(true_reward)
    fit_rows = np.asarray(fit_rows, bool) & known
    eval_rows = np.asarray(eval_rows, bool) & known
    mean = quantiles.mean(axis=1)
    scale, shift = fit_affine_map(mean[fit_rows], true_reward[fit_rows])
    report: dict[str, float] = {
        "scale": scale,
        "shift": shift,
        "n_fit": int(fit_rows.sum()),
        "n_eval": int(eval_rows.sum()),
    }
    mapped = scale * quantiles[eval_rows] + shift
    lowest = quantile_levels(quantiles.shape[1])[0]
    for nominal in coverages:
        low_level, high_level = 0.5 - nominal / 2.0, 0.5 + nominal / 2.0
        key = f"{nominal:g}"
        reachable = low_level >= lowest - 1e-12
        if not reachable or not np.isfinite(scale) or report["n_eval"] == 0:
            report[f"coverage_{key}"] = float("nan")
            report[f"width_{key}"] = float("nan")
            continue
        lower = interpolate_quantile(mapped, low_level)
        upper = interpolate_quantile(mapped, high_level)
        report[f"coverage_{key}"] = interval_coverage(lower, upper, true_reward[eval_rows])
        report[f"width_{key}"] = float(np.mean(upper - lower))
        if true_mean is not None and true_std is not None:
            from scipy.stats import norm

            centre = np.asarray(true_mean, float)[eval_rows]
            spread = np.asarray(true_std, float)[eval_rows]
            true_lower = centre + norm.ppf(low_level) * spread
            true_upper = centre + norm.ppf(high_level) * spread
            report[f"true_width_{key}"] = float(np.mean(true_upper - true_lower))
            report[f"overlap_true_{key}"] = interval_overlap(lower, upper, true_lower, true_upper)
    return report
