"""Evaluation: pure metric functions (`metrics`) and summaries over seeds
(`stats`). Reports and plots built on them live beside these modules."""

from mtrec.evaluation.metrics import (
    auc,
    gauc,
    interval_coverage,
    ncis,
    ncis_lift,
    ranking_metrics,
    satisfaction_split,
    spearman,
    target_ranks,
)
from mtrec.evaluation.stats import aggregate_seeds, format_mean_std, mean_std, paired_comparison

__all__ = [
    "aggregate_seeds",
    "auc",
    "format_mean_std",
    "gauc",
    "interval_coverage",
    "mean_std",
    "ncis",
    "ncis_lift",
    "paired_comparison",
    "ranking_metrics",
    "satisfaction_split",
    "spearman",
    "target_ranks",
]
