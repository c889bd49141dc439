"""Summaries over seeds: mean ± std, paired comparisons, aggregation.

Every reported number in mtrec is a mean ± sample std over seeds; these are
the only functions that compute them. NaN per-seed values (a metric that was
undefined on that seed) are left out and `n` says how many seeds counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

NAN = float("nan")


def _finite_values(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    return array[~np.isnan(array)]


def mean_std(values_per_seed: Iterable[float]) -> dict[str, float]:
    """{"mean", "std", "n"} over seeds; std is the sample std (ddof=1), NaN
    with a single seed; mean is NaN with none. NaN values are skipped."""
    values = _finite_values(values_per_seed, "values_per_seed")
    n = len(values)
    return {
        "mean": float(values.mean()) if n else NAN,
        "std": float(values.std(ddof=1)) if n >= 2 else NAN,
        "n": n,
    }


def paired_comparison(a_per_seed: Sequence[float], b_per_seed: Sequence[float]) -> dict[str, float]:
    """Paired comparison of two candidates run on the same seeds (a - b).

    Returns the mean and sample std of the per-seed differences, the paired
    t statistic and its two-sided p-value (scipy's ttest_rel), and n. Seeds
    where either value is NaN are dropped as a pair. With n < 2, std, t and
    p are NaN. When all differences are equal and nonzero, scipy gives an
    infinite t and p = 0; when they are all zero, t and p are NaN.
    """
    a = np.asarray(list(a_per_seed), dtype=float)
    b = np.asarray(list(b_per_seed), dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal flat shapes, got {a.shape} and {b.shape}")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    n = len(a)
    diff = a - b
    result = {
        "diff_mean": float(diff.mean()) if n else NAN,
        "diff_std": float(diff.std(ddof=1)) if n >= 2 else NAN,
        "t": NAN,
        "p_value": NAN,
        "n": n,
    }
    if n >= 2:
        from scipy import stats  # here: ~0.4 s to import, only paired comparisons need it

        with np.errstate(divide="ignore", invalid="ignore"):
            test = stats.ttest_rel(a, b)
        result["t"] = float(test.statistic)
        result["p_value"] = float(test.pvalue)
    return result


def aggregate_seeds(
    metrics_per_seed: Sequence[Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """[{metric: value} per seed] -> {metric: {"mean", "std", "n"}}.

    Keys are the union over seeds in first-seen order; a metric missing from a
    seed counts as NaN there (so `n` tells how many seeds reported it).
    Non-numeric values (strings, None) are rejected.
    """
    names: list[str] = []
    for seed_metrics in metrics_per_seed:
        names.extend(name for name in seed_metrics if name not in names)
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        values = []
        for seed_metrics in metrics_per_seed:
            value = seed_metrics.get(name, NAN)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"metric {name!r} has a non-numeric value {value!r}")
            values.append(float(value))
        summary[name] = mean_std(values)
    return summary


def format_mean_std(summary: Mapping[str, float], digits: int = 4) -> str:
    """'0.1234 ± 0.0056 (n=3)' for reports; 'nan' parts stay visible."""
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f} (n={summary['n']})"
