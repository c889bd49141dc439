"""Offline metrics as pure functions: arrays in, floats or dicts of floats out.

Conventions shared by every function here:
- Inputs are anything `numpy.asarray` accepts (lists, numpy arrays, CPU torch
  tensors). Call `.cpu()` on CUDA tensors first.
- A metric that is undefined on its input (an empty group, a single class for
  AUC, a constant vector for a correlation) returns NaN, never 0 or an
  exception, so one missing group does not sink a whole report. Mismatched
  shapes are programming errors and raise ValueError.
- Nothing is computed at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

# scipy is imported where it is used (spearman, ncis): `scipy.stats` alone costs
# ~0.4 s per process, and AUC, which every validation computes, ranks with
# numpy (`average_ranks`).

NAN = float("nan")
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)

TieRule = Literal["pessimistic", "average", "optimistic"]


def _as_1d(values, name: str, dtype=None) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")


def _binary_labels(labels, name: str = "labels") -> np.ndarray:
    array = _as_1d(labels, name, dtype=float)
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be 0/1")
    return array.astype(bool)


# --------------------------------------------------------------------------- CTR


def average_ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing their average rank: the same float64 values as
    `scipy.stats.rankdata(values, method="average")` (all NaN when any value is
    NaN), without importing scipy.stats."""
    array = _as_1d(values, "values", dtype=float)
    n = len(array)
    if np.isnan(array).any():
        return np.full(n, NAN)
    order = np.argsort(array, kind="mergesort")
    ordered = array[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if n else np.zeros(0, int)
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=float)
    # A tie group at sorted positions start..end-1 holds ranks start+1..end.
    ranks[order] = np.repeat(0.5 * (starts + ends + 1), ends - starts)
    return ranks


def auc(labels, scores) -> float:
    """Area under the ROC curve, via the Mann-Whitney U statistic.

    Tied scores get their average rank, so a tie between a positive and a
    negative counts one half. NaN when either class is absent.
    """
    positive = _binary_labels(labels)
    score = _as_1d(scores, "scores", dtype=float)
    _same_length(labels=positive, scores=score)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if n_positive == 0 or n_negative == 0:
        return NAN
    ranks = average_ranks(score)
    rank_sum = ranks[positive].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def gauc(user_ids, labels, scores, weighting: Literal["exposures", "users"] = "exposures") -> float:
    """Group AUC: per-user AUC averaged over users that have both classes.

    `weighting="exposures"` (default) weighs each user by their number of
    exposures, as the DIN paper (Zhou et al. 2018) defines GAUC;
    `weighting="users"` is the plain mean over users. Users with a single
    class are left out (their AUC is undefined). NaN when no user has both.
    Ties within a user count one half, as in `auc`.
    """
    positive = _binary_labels(labels)
    score = _as_1d(scores, "scores", dtype=float)
    users = _as_1d(user_ids, "user_ids")
    _same_length(user_ids=users, labels=positive, scores=score)
    if weighting not in ("exposures", "users"):
        raise ValueError(f"weighting must be 'exposures' or 'users', got {weighting!r}")
    frame = pd.DataFrame({"user": users, "positive": positive, "score": score})
    frame["rank"] = frame.groupby("user", sort=False)["score"].rank(method="average")
    frame["positive_rank"] = np.where(frame["positive"], frame["rank"], 0.0)
    per_user = frame.groupby("user", sort=False).agg(
        n=("positive", "size"), n_positive=("positive", "sum"), rank_sum=("positive_rank", "sum")
    )
    n_positive = per_user["n_positive"].to_numpy(dtype=float)
    n_negative = per_user["n"].to_numpy(dtype=float) - n_positive
    defined = (n_positive > 0) & (n_negative > 0)
    if not defined.any():
        return NAN
    n_positive, n_negative = n_positive[defined], n_negative[defined]
    rank_sum = per_user["rank_sum"].to_numpy(dtype=float)[defined]
    user_auc = (rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    weights = n_positive + n_negative if weighting == "exposures" else np.ones_like(user_auc)
    return float(np.sum(weights * user_auc) / np.sum(weights))


# -------------------------------------------------------------------------- NCIS


def ncis(user_ids, labels, probs, cap: float, eps: float = 1e-12) -> float:
    """Normalised capped importance sampling estimate of positives per user.

    METHOD.md §4: for each user u, rho_u is the product over u's exposures of
    the model's probability of the logged response (p if label 1 else 1 - p);
    weights w_u = min(rho_u / mean(rho), cap); NCIS = sum w_u G_u / sum w_u,
    with G_u the number of positives of u. Products and the mean are taken in
    log space (logsumexp), so long trajectories do not underflow. Probabilities
    are clipped to [eps, 1 - eps] so one confident miss gives a tiny weight
    rather than a log of zero. NaN on empty input.

    The paper reports the lift over the untrained model: use `ncis_lift`, or
    subtract the untrained model's `ncis` yourself.
    """
    positive = _binary_labels(labels)
    prob = _as_1d(probs, "probs", dtype=float)
    users = _as_1d(user_ids, "user_ids")
    _same_length(user_ids=users, labels=positive, probs=prob)
    if not cap > 0:
        raise ValueError(f"cap must be positive, got {cap}")
    if len(users) == 0:
        return NAN
    if np.isnan(prob).any():
        raise ValueError("probs contain NaN")
    prob = np.clip(prob, eps, 1.0 - eps)
    log_p_logged = np.where(positive, np.log(prob), np.log1p(-prob))
    frame = pd.DataFrame({"user": users, "log_p": log_p_logged, "positive": positive})
    per_user = frame.groupby("user", sort=False).agg(
        log_rho=("log_p", "sum"), gain=("positive", "sum")
    )
    from scipy.special import logsumexp

    log_rho = per_user["log_rho"].to_numpy(dtype=float)
    gain = per_user["gain"].to_numpy(dtype=float)
    log_mean_rho = logsumexp(log_rho) - np.log(len(log_rho))
    weights = np.minimum(np.exp(log_rho - log_mean_rho), cap)
    return float(np.sum(weights * gain) / np.sum(weights))


def ncis_lift(user_ids, labels, probs, baseline_probs, cap: float, eps: float = 1e-12) -> float:
    """NCIS of `probs` minus NCIS of `baseline_probs` (e.g. the untrained
    model's predictions) on the same exposures, as the paper reports it."""
    return ncis(user_ids, labels, probs, cap, eps) - ncis(
        user_ids, labels, baseline_probs, cap, eps
    )


# ----------------------------------------------------------------------- ranking


def target_ranks(scores, targets, history_mask=None, ties: TieRule = "pessimistic") -> np.ndarray:
    """1-based rank of each user's held-out item among all items.

    scores:       [U, n_items + 1] float; column 0 is the padding index.
    targets:      [U] int in 1..n_items.
    history_mask: [U, n_items + 1] bool, True for items to leave out of the
                  ranking (the user's history); None masks nothing. Column 0
                  is always masked and the target itself never is, so a
                  re-consumed item can still be ranked.
    ties:         how other items scoring exactly the target's score count.
                  "pessimistic" (default) puts the target below all of them,
                  so a constant-score model ranks every target last instead of
                  first; "average" puts it in the middle (expected rank under
                  random tie-breaking, may be fractional); "optimistic" above.

    Returns [U] float ranks (integers unless ties="average").
    """
    score = np.asarray(scores, dtype=float)
    if score.ndim != 2:
        raise ValueError(f"scores must be [U, n_items + 1], got shape {score.shape}")
    n_users, n_columns = score.shape
    target = _as_1d(targets, "targets").astype(np.int64)
    if len(target) != n_users:
        raise ValueError(f"{len(target)} targets for {n_users} score rows")
    if n_users and (target.min() < 1 or target.max() >= n_columns):
        raise ValueError(f"targets must lie in 1..{n_columns - 1}")
    if history_mask is None:
        masked = np.zeros(score.shape, dtype=bool)
    else:
        masked = np.array(history_mask, dtype=bool, copy=True)
        if masked.shape != score.shape:
            raise ValueError(f"history_mask shape {masked.shape} != scores shape {score.shape}")
    masked[:, 0] = True
    rows = np.arange(n_users)
    masked[rows, target] = False
    target_score = score[rows, target][:, None]
    if np.isnan(target_score).any():
        raise ValueError("a target has a NaN score")
    candidate = ~masked
    n_higher = np.sum(candidate & (score > target_score), axis=1)
    # The target itself is among the equal-scoring candidates: subtract it.
    n_tied = np.sum(candidate & (score == target_score), axis=1) - 1
    return rank_from_counts(n_higher, n_tied, ties)


# The share of the equal-scoring other items each tie rule ranks above the target.
TIE_SHARE = {"pessimistic": 1.0, "average": 0.5, "optimistic": 0.0}


def rank_from_counts(n_higher: np.ndarray, n_tied: np.ndarray, ties: TieRule) -> np.ndarray:
    """1-based rank from the counts of other candidates scoring above and equal to
    the target, under tie rule `ties` (`target_ranks`)."""
    if ties not in TIE_SHARE:
        raise ValueError(f"ties must be one of {sorted(TIE_SHARE)}, got {ties!r}")
    return 1.0 + n_higher + TIE_SHARE[ties] * n_tied


def ranking_metrics(ranks, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K for one held-out item per user.

    HR@K = 1[rank <= K]; NDCG@K = 1/log2(rank + 1) if rank <= K else 0 (the
    ideal DCG is 1 with one relevant item); MRR@K = 1/rank if rank <= K else 0.
    Each is averaged over users; NaN for every key when there are no users.
    """
    rank = _as_1d(ranks, "ranks", dtype=float)
    if len(rank) and (np.isnan(rank).any() or rank.min() < 1):
        raise ValueError("ranks must be >= 1")
    result: dict[str, float] = {}
    for k in ks:
        hit = rank <= k
        if len(rank) == 0:
            result |= {f"HR@{k}": NAN, f"NDCG@{k}": NAN, f"MRR@{k}": NAN}
            continue
        result[f"HR@{k}"] = float(hit.mean())
        result[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0).mean())
        result[f"MRR@{k}"] = float(np.where(hit, 1.0 / rank, 0.0).mean())
    return result


def satisfaction_split(ranks, satisfied, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Ranking quality split by whether the held-out item satisfied the user
    (PNFRec protocol, Ivanova et al. 2025).

    satisfied: [U] float, 1.0 if the user's held-out item is satisfying, 0.0
    if it is not, NaN if unknown (those users count in neither group).
    Returns HR_p@K, NDCG_p@K over satisfied targets, HR_n@K, NDCG_n@K over
    unsatisfied ones, dNDCG@K = NDCG_p@K - NDCG_n@K, and the group sizes
    n_p, n_n. An empty group gives NaN for its metrics (and for dNDCG).
    """
    rank = _as_1d(ranks, "ranks", dtype=float)
    satisfaction = _as_1d(satisfied, "satisfied", dtype=float)
    _same_length(ranks=rank, satisfied=satisfaction)
    known = ~np.isnan(satisfaction)
    if not np.isin(satisfaction[known], (0.0, 1.0)).all():
        raise ValueError("satisfied must be 1.0, 0.0 or NaN")
    groups = {"p": rank[satisfaction == 1.0], "n": rank[satisfaction == 0.0]}
    result: dict[str, float] = {}
    for k in ks:
        for group, group_ranks in groups.items():
            metrics = ranking_metrics(group_ranks, ks=(k,))
            result[f"HR_{group}@{k}"] = metrics[f"HR@{k}"]
            result[f"NDCG_{group}@{k}"] = metrics[f"NDCG@{k}"]
        result[f"dNDCG@{k}"] = result[f"NDCG_p@{k}"] - result[f"NDCG_n@{k}"]
    result["n_p"] = float(len(groups["p"]))
    result["n_n"] = float(len(groups["n"]))
    return result


# ------------------------------------------------------- reward recovery checks


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties). NaN with fewer than
    two points or when either input is constant."""
    first = _as_1d(x, "x", dtype=float)
    second = _as_1d(y, "y", dtype=float)
    _same_length(x=first, y=second)
    if len(first) < 2 or np.ptp(first) == 0 or np.ptp(second) == 0:
        return NAN
    from scipy import stats

    return float(stats.spearmanr(first, second).statistic)


def interval_coverage(lo, hi, truth) -> float:
    """Fraction of `truth` values inside their closed interval [lo, hi].
    NaN on empty input. Raises if some lo > hi (crossed quantiles)."""
    low = _as_1d(lo, "lo", dtype=float)
    high = _as_1d(hi, "hi", dtype=float)
    true_value = _as_1d(truth, "truth", dtype=float)
    _same_length(lo=low, hi=high, truth=true_value)
    if len(true_value) == 0:
        return NAN
    if np.any(low > high):
        raise ValueError("interval lower bound above upper bound")
    return float(np.mean((low <= true_value) & (true_value <= high)))
