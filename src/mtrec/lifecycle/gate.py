"""The offline-metric gate: pure functions from validation evidence to a decision.

Evidence. The gate chooses on validation only: for each candidate, every
seed's chosen checkpoint scored on the validation split (`reports/metrics.json`
-> `candidates.<name>.valid.seeds`) and the per-user ranks behind its ranking
metrics (`valid.per_user`: `user_idx`, `satisfied`, `ranks: {seed: [...]}`).
Test metrics are carried along for the record and never used to choose.

Comparisons. A candidate is compared with each reference (the champion, and the
unguided base `<backbone>-none` of its backbone) on the same seeds, paired, and
on the same validation users, paired. The gain of a metric is its relative
change `(candidate - reference) / |reference|` of the means over the paired
seeds, with the sign flipped where lower is better (`metric_direction`), so a
positive gain is always an improvement. Its interval:
- ranking metrics (HR/NDCG/MRR@K, the satisfaction split): a paired bootstrap
  over seeds and users (each replicate draws the seed pairs with replacement
  and the validation users with replacement, the same draw for both sides);
- other metrics (AUC, loss, NCIS, ...): a paired t interval over seeds.
The primary metric must have its interval's lower bound strictly above
`min_relative_improvement` against every reference; a guard metric's gain
(point estimate) may not fall below `-guard_tolerance`.

Missing evidence never passes: a candidate or reference without a finite value
on a seed, without per-user ranks, with ranks that do not reproduce its
metrics, or a champion whose evidence could not be read, fails the rule that
needed it, with the reason in the rule's message.

First promotion (no champion yet): the champion rules pass with that reason;
a guided candidate must still beat its unguided base as above, and the base
itself is eligible (`unguided_eligible`) once its evidence is complete. So the
first run registers the best candidate among those that pass: a guided one only
when its gain over the base clears the interval, the base otherwise.

The winner is the passing candidate with the best validation mean of the
primary metric. The registered model is one seed's chosen checkpoint: the lower
median seed by validation primary (`representative_seed`), named in the verdict.
Nothing here touches MLflow or files: the decision is a JSON-ready dict that
`reports/gate.json` stores as is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from mtrec.config import GateConfig

RuleStatus = Literal["pass", "fail"]
Direction = Literal["higher", "lower"]
SELECTION_SPLIT = "valid"
SEED_RULE = "lower median of the seeds by validation {metric}"

# Built-in directions of the metrics mtrec reports (METHOD.md §4).
_LOWER_IS_BETTER = (re.compile(r"^loss$"), re.compile(r"^(HR|NDCG|MRR)_n@\d+$"))
_HIGHER_IS_BETTER = (
    re.compile(r"^(AUC|GAUC|NCIS|NCIS_lift)$"),
    re.compile(r"^(HR|NDCG|MRR)(_p)?@\d+$"),
    re.compile(r"^dNDCG@\d+$"),
)
_RANKING_METRIC = re.compile(r"^(HR|NDCG|MRR)(?:_(p|n))?@(\d+)$")
_DELTA_METRIC = re.compile(r"^dNDCG@(\d+)$")


def metric_direction(metric: str, declared: Mapping[str, str] | None = None) -> Direction:
    """ "higher" or "lower" (is better) for `metric`: `declared` first (the
    `gate.directions` param), else the built-in direction of mtrec's metrics.
    An unknown metric without a declared direction is an error, not a guess."""
    if declared and metric in declared:
        return declared[metric]  # type: ignore[return-value]
    if any(pattern.match(metric) for pattern in _LOWER_IS_BETTER):
        return "lower"
    if any(pattern.match(metric) for pattern in _HIGHER_IS_BETTER):
        return "higher"
    raise ValueError(
        f"the gate does not know whether higher or lower {metric!r} is better: "
        f"declare it in params.yaml gate.directions ({metric}: higher | lower)"
    )


def relative_change(candidate: float, reference: float) -> float:
    """`(candidate - reference) / |reference|`; ±inf or 0 when the reference is 0."""
    if reference == 0.0:
        if candidate == reference:
            return 0.0
        return math.inf if candidate > reference else -math.inf
    return (candidate - reference) / abs(reference)


def relative_gain(candidate: float, reference: float, direction: Direction) -> float:
    """The relative change, sign-flipped where lower is better: > 0 is better."""
    change = relative_change(candidate, reference)
    return change if direction == "higher" else -change


def _finite_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _seed_order(seed: str) -> tuple:
    return (int(seed) if str(seed).lstrip("-").isdigit() else math.inf, str(seed))


# --- evidence -----------------------------------------------------------------------


@dataclass
class Evidence:
    """Validation evidence of one candidate (or of the champion)."""

    label: str
    seeds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    user_idx: np.ndarray | None = None
    satisfied: np.ndarray | None = None
    ranks: dict[str, np.ndarray] | None = None
    # The champion re-scored: one fixed model, compared with every candidate seed.
    fixed_model: bool = False
    problems: list[str] = field(default_factory=list)

    def values(self, metric: str) -> dict[str, float | None]:
        return {seed: metrics.get(metric) for seed, metrics in self.seeds.items()}

    def mean(self, metric: str) -> float | None:
        values = list(self.values(metric).values())
        if not values or any(v is None for v in values):
            return None
        return float(np.mean(values))

    def std(self, metric: str) -> float | None:
        values = list(self.values(metric).values())
        if len(values) < 2 or any(v is None for v in values):
            return None
        return float(np.std(values, ddof=1))


def parse_evidence(label: str, block: Any, fixed_model: bool = False) -> Evidence:
    """`{"seeds": {seed: {metric: value}}, "per_user": {...}}` -> Evidence.

    Never raises: whatever is missing or malformed becomes a `problems` entry
    (and a metric value that is missing, NaN or not a number becomes None)."""
    evidence = Evidence(label=label, fixed_model=fixed_model)
    if not isinstance(block, Mapping):
        evidence.problems.append(f"{label} has no validation evidence")
        return evidence
    seeds = block.get("seeds")
    if not isinstance(seeds, Mapping) or not seeds:
        evidence.problems.append(f"{label} has no per-seed validation metrics")
    else:
        for seed, metrics in seeds.items():
            if not isinstance(metrics, Mapping):
                evidence.problems.append(f"{label} seed {seed}: metrics are not a mapping")
                metrics = {}
            evidence.seeds[str(seed)] = {
                str(name): _finite_or_none(value) for name, value in metrics.items()
            }
    per_user = block.get("per_user")
    if per_user is None:
        reason = block.get("per_user_error") or "no per-user validation ranks"
        evidence.problems.append(f"{label}: {reason}")
        return evidence
    try:
        user_idx = np.asarray(per_user["user_idx"], dtype=np.int64)
        satisfied = np.asarray(
            [np.nan if v is None else v for v in per_user["satisfied"]], dtype=float
        )
        ranks = {
            str(seed): np.asarray(values, dtype=float) for seed, values in per_user["ranks"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        evidence.problems.append(f"{label}: malformed per-user validation ranks ({error!r})")
        return evidence
    bad = [
        seed
        for seed, r in ranks.items()
        if r.shape != user_idx.shape or (len(r) and (np.isnan(r).any() or r.min() < 1))
    ]
    if satisfied.shape != user_idx.shape or bad:
        evidence.problems.append(
            f"{label}: per-user validation ranks do not line up with its users"
            + (f" (seeds {bad})" if bad else "")
        )
        return evidence
    missing = sorted(set(evidence.seeds) - set(ranks), key=_seed_order)
    if missing:
        evidence.problems.append(f"{label}: no per-user validation ranks for seeds {missing}")
    evidence.user_idx, evidence.satisfied, evidence.ranks = user_idx, satisfied, ranks
    return evidence


def check_metrics(evidence: Evidence, metrics: Sequence[str]) -> list[str]:
    """Problems: every seed must have a finite value of every metric the gate uses."""
    problems = []
    for metric in metrics:
        lacking = [seed for seed, value in evidence.values(metric).items() if value is None]
        if lacking:
            problems.append(
                f"{evidence.label} has no finite validation {metric} on seed(s) "
                + ", ".join(sorted(lacking, key=_seed_order))
            )
    return problems


# --- per-user terms of the ranking metrics ------------------------------------------------


def _user_terms(metric: str, ranks: np.ndarray, satisfied: np.ndarray):
    """[(sign, mask[U], values[..., U])] with metric = sum(sign * mean of values over
    mask), or None when `metric` is not a mean over users of the held-out ranks."""
    delta = _DELTA_METRIC.match(metric)
    if delta:
        k = delta.group(1)
        positive = _user_terms(f"NDCG_p@{k}", ranks, satisfied)
        negative = _user_terms(f"NDCG_n@{k}", ranks, satisfied)
        return [positive[0], (-1.0, *negative[0][1:])]
    match = _RANKING_METRIC.match(metric)
    if not match:
        return None
    kind, group, k = match.group(1), match.group(2), int(match.group(3))
    hit = ranks <= k
    if kind == "HR":
        values = hit.astype(float)
    elif kind == "NDCG":
        values = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
    else:
        values = np.where(hit, 1.0 / ranks, 0.0)
    if group == "p":
        mask = satisfied == 1.0
    elif group == "n":
        mask = satisfied == 0.0
    else:
        mask = np.ones(ranks.shape[-1], bool)
    return [(1.0, mask.astype(float), values)]


def is_user_metric(metric: str) -> bool:
    return bool(_RANKING_METRIC.match(metric) or _DELTA_METRIC.match(metric))


def _weighted_metric(terms, weights: np.ndarray) -> np.ndarray:
    """Metric under user weights [B, U] for values [P, U] -> [B, P] (NaN: empty group)."""
    total = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        for sign, mask, values in terms:
            numerator = weights @ (mask * values).T  # [B, P]
            denominator = (weights @ mask)[:, None]  # [B, 1]
            total = total + sign * numerator / denominator
    return total


def metric_from_ranks(metric: str, ranks: np.ndarray, satisfied: np.ndarray) -> float:
    terms = _user_terms(metric, np.asarray(ranks, float)[None, :], satisfied)
    return float(_weighted_metric(terms, np.ones((1, len(ranks))))[0, 0])


def _relative_gain_array(candidate: np.ndarray, reference: np.ndarray, direction: str):
    with np.errstate(invalid="ignore", divide="ignore"):
        change = (candidate - reference) / np.abs(reference)
    zero = reference == 0.0
    change = np.where(zero & (candidate == reference), 0.0, change)
    change = np.where(zero & (candidate > reference), np.inf, change)
    change = np.where(zero & (candidate < reference), -np.inf, change)
    return change if direction == "higher" else -change


def paired_bootstrap(
    metric: str,
    direction: Direction,
    candidate_ranks: np.ndarray,
    reference_ranks: np.ndarray,
    satisfied: np.ndarray,
    confidence: float,
    n_samples: int,
    seed: int,
) -> dict[str, Any]:
    """Percentile interval of the relative gain of the seed-mean `metric`,
    resampling the P seed pairs (rows) and the U users (columns) with
    replacement, the same draw for candidate and reference."""
    n_pairs, n_users = candidate_ranks.shape
    rng = np.random.default_rng(seed)
    candidate_terms = _user_terms(metric, candidate_ranks, satisfied)
    reference_terms = _user_terms(metric, reference_ranks, satisfied)
    gains = []
    for start in range(0, n_samples, 250):
        size = min(250, n_samples - start)
        weights = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=size)
        weights = weights.astype(float)
        pairs = rng.integers(0, n_pairs, size=(size, n_pairs))
        cand = np.take_along_axis(_weighted_metric(candidate_terms, weights), pairs, 1).mean(1)
        ref = np.take_along_axis(_weighted_metric(reference_terms, weights), pairs, 1).mean(1)
        gains.append(_relative_gain_array(cand, ref, direction))
    gain = np.concatenate(gains)
    usable = gain[~np.isnan(gain)]
    alpha = 1.0 - confidence
    interval: dict[str, Any] = {
        "method": "paired bootstrap over seeds and validation users",
        "level": confidence,
        "n_seed_pairs": int(n_pairs),
        "n_users": int(n_users),
        "n_samples": int(n_samples),
        "n_undefined_samples": int(len(gain) - len(usable)),
    }
    if len(usable) < 0.9 * len(gain):
        interval |= {"lower": None, "upper": None}
        interval["error"] = (
            f"{metric} is undefined in {len(gain) - len(usable)} of {len(gain)} replicates "
            "(too few users in its group)"
        )
        return interval
    lower, upper = np.quantile(usable, [alpha / 2, 1 - alpha / 2])
    return interval | {"lower": float(lower), "upper": float(upper)}


def paired_seed_interval(
    candidate: Sequence[float], reference: Sequence[float], direction: Direction, confidence: float
) -> dict[str, Any]:
    """Paired t interval over seeds of the difference, as a relative gain
    (divided by |mean reference|); None bounds with fewer than 2 seed pairs."""
    from mtrec.evaluation.stats import paired_comparison

    result = paired_comparison(candidate, reference)
    n = result["n"]
    interval: dict[str, Any] = {
        "method": "paired t over seeds",
        "level": confidence,
        "n_seed_pairs": int(n),
        "p_value": _finite_or_none(result["p_value"]),
    }
    reference_mean = float(np.mean(reference)) if len(reference) else math.nan
    if n < 2 or not math.isfinite(result["diff_std"]) or reference_mean == 0.0:
        interval |= {"lower": None, "upper": None}
        interval["error"] = (
            "needs at least 2 seeds" if n < 2 else "reference mean is 0 or spread undefined"
        )
        return interval
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * result["diff_std"] / math.sqrt(n)
    low, high = (result["diff_mean"] - half, result["diff_mean"] + half)
    low, high = low / abs(reference_mean), high / abs(reference_mean)
    if direction == "lower":
        low, high = -high, -low
    return interval | {"lower": float(low), "upper": float(high)}


# --- one comparison ----------------------------------------------------------------------


def _pairs(candidate: Evidence, reference: Evidence) -> tuple[list[tuple[str, str]], str | None]:
    """(candidate seed, reference seed) pairs and a note on seeds left unpaired."""
    if reference.fixed_model:
        if len(reference.seeds) != 1:
            return [], None
        (only,) = reference.seeds
        return [(seed, only) for seed in sorted(candidate.seeds, key=_seed_order)], None
    common = sorted(set(candidate.seeds) & set(reference.seeds), key=_seed_order)
    note = None
    if set(candidate.seeds) != set(reference.seeds) and common:
        note = (
            f"paired on the common seeds {common} (candidate {sorted(candidate.seeds)}, "
            f"{reference.label} {sorted(reference.seeds)})"
        )
    return [(seed, seed) for seed in common], note


def _user_matrices(candidate: Evidence, reference: Evidence, pairs, metric: str):
    """(candidate ranks [P, U], reference ranks [P, U], satisfied [U]) on the
    users both have, or a string saying why there are none."""
    for side in (candidate, reference):
        if side.ranks is None or side.user_idx is None:
            return f"{side.label} has no per-user validation ranks"
        # The per-user evidence must reproduce the per-seed metric it backs.
        seeds = {c for c, _ in pairs} if side is candidate else {r for _, r in pairs}
        for seed in sorted(seeds, key=_seed_order):
            if seed not in side.ranks:
                return f"{side.label} has no per-user validation ranks for seed {seed}"
            stored = side.seeds.get(seed, {}).get(metric)
            recomputed = metric_from_ranks(metric, side.ranks[seed], side.satisfied)
            if stored is not None and not math.isclose(
                stored, recomputed, rel_tol=1e-6, abs_tol=1e-9
            ):
                return (
                    f"{side.label}'s per-user ranks of seed {seed} give {metric} "
                    f"{recomputed:.6g}, its metrics say {stored:.6g}: the evidence is inconsistent"
                )
    common, cand_pos, ref_pos = np.intersect1d(
        candidate.user_idx, reference.user_idx, assume_unique=True, return_indices=True
    )
    if len(common) == 0:
        return "no validation users in common"
    cand_sat, ref_sat = candidate.satisfied[cand_pos], reference.satisfied[ref_pos]
    if not np.array_equal(np.isnan(cand_sat), np.isnan(ref_sat)) or not np.array_equal(
        np.nan_to_num(cand_sat, nan=-1.0), np.nan_to_num(ref_sat, nan=-1.0)
    ):
        return "the two sides label their validation users' satisfaction differently"
    cand = np.stack([candidate.ranks[c][cand_pos] for c, _ in pairs])
    ref = np.stack([reference.ranks[r][ref_pos] for _, r in pairs])
    return cand, ref, cand_sat


def compare(
    rule: str,
    metric: str,
    kind: Literal["improve", "guard"],
    candidate: Evidence,
    reference: Evidence,
    config: GateConfig,
) -> dict[str, Any]:
    """One paired comparison of `metric` on validation; a JSON-ready rule record."""
    direction = metric_direction(metric, config.directions)
    threshold = config.min_relative_improvement if kind == "improve" else -config.guard_tolerance
    record: dict[str, Any] = {
        "rule": rule,
        "metric": metric,
        "direction": direction,
        "reference": reference.label,
        "split": SELECTION_SPLIT,
        "candidate_value": None,
        "reference_value": None,
        "relative_gain": None,
        "interval": None,
        "threshold": threshold,
        "decided_on": "interval lower bound" if kind == "improve" else "point estimate",
    }

    def fail(message: str) -> dict[str, Any]:
        return record | {"status": "fail", "message": message}

    if reference.problems:
        return fail("; ".join(reference.problems))
    pairs, note = _pairs(candidate, reference)
    if not pairs:
        return fail(f"{candidate.label} and {reference.label} have no seeds in common")
    record["seed_pairs"] = [list(pair) for pair in pairs]
    if note:
        record["note"] = note
    cand_values = [candidate.seeds[c].get(metric) for c, _ in pairs]
    ref_values = [reference.seeds[r].get(metric) for _, r in pairs]
    for side, values, seeds in (
        (candidate, cand_values, [c for c, _ in pairs]),
        (reference, ref_values, [r for _, r in pairs]),
    ):
        lacking = sorted({s for s, v in zip(seeds, values, strict=True) if v is None})
        if lacking:
            return fail(
                f"{side.label} has no finite validation {metric} on seed(s) "
                + ", ".join(sorted(lacking, key=_seed_order))
            )
    cand_mean, ref_mean = float(np.mean(cand_values)), float(np.mean(ref_values))
    gain = relative_gain(cand_mean, ref_mean, direction)
    record |= {"candidate_value": cand_mean, "reference_value": ref_mean, "relative_gain": gain}

    if is_user_metric(metric):
        matrices = _user_matrices(candidate, reference, pairs, metric)
        if isinstance(matrices, str):
            interval = {"lower": None, "upper": None, "error": matrices}
        else:
            interval = paired_bootstrap(
                metric,
                direction,
                *matrices,
                config.confidence,
                config.bootstrap_samples,
                config.bootstrap_seed,
            )
    else:
        interval = paired_seed_interval(cand_values, ref_values, direction, config.confidence)
    record["interval"] = interval
    bounds = (
        f"[{interval['lower']:+.2%}, {interval['upper']:+.2%}]"
        if interval.get("lower") is not None
        else f"unavailable ({interval.get('error')})"
    )
    head = (
        f"{metric} ({direction} is better) {cand_mean:.6g} vs {reference.label} {ref_mean:.6g}: "
        f"gain {gain:+.2%}, {config.confidence:.0%} interval {bounds}"
    )
    if kind == "improve":
        lower = interval.get("lower")
        if lower is None:
            return fail(f"{head}; no interval, so no evidence of a gain")
        passed = lower > threshold
        verdict = "clears" if passed else "does not clear"
        return record | {
            "status": "pass" if passed else "fail",
            "message": f"{head}; the lower bound {verdict} the margin {threshold:+.2%}",
        }
    passed = gain >= threshold
    verdict = "within" if passed else "drops beyond"
    return record | {
        "status": "pass" if passed else "fail",
        "message": f"{head}; {verdict} the {config.guard_tolerance:.2%} tolerance",
    }


# --- candidates and the decision ----------------------------------------------------------


def base_name(candidate_name: str, candidate: Mapping[str, Any], config: GateConfig) -> str:
    backbone = candidate.get("backbone") or candidate_name.split("-", 1)[0]
    return f"{backbone}-{config.base_guidance}"


def _is_base(candidate_name: str, candidate: Mapping[str, Any], config: GateConfig) -> bool:
    guidance = candidate.get("guidance")
    if guidance is None:
        guidance = candidate_name.split("-", 1)[1] if "-" in candidate_name else ""
    return guidance == config.base_guidance


def gate_metrics(config: GateConfig) -> tuple[str, ...]:
    return tuple(dict.fromkeys((config.primary_metric, *config.guard_metrics)))


def representative_seed(evidence: Evidence, metric: str, direction: Direction) -> str | None:
    """The seed whose model is registered: the lower median of the seeds by
    validation `metric` (with 2 seeds, the worse one; ties by seed), so the
    registered model is never the lucky seed of the candidate that was judged."""
    scored = [(v, s) for s, v in evidence.values(metric).items() if v is not None]
    if not scored or len(scored) != len(evidence.seeds):
        return None
    worst_first = sorted(
        scored, key=lambda vs: ((vs[0] if direction == "higher" else -vs[0]), _seed_order(vs[1]))
    )
    return worst_first[(len(worst_first) - 1) // 2][1]


def evaluate_candidate(
    name: str,
    candidates: Mapping[str, Mapping[str, Any]],
    evidences: Mapping[str, Evidence],
    champion: Evidence | None,
    config: GateConfig,
) -> dict[str, Any]:
    """Every rule for one candidate against the champion and its unguided base."""
    candidate = candidates[name]
    evidence = evidences[name]
    metrics = gate_metrics(config)
    primary_direction = metric_direction(config.primary_metric, config.directions)
    rules: list[dict[str, Any]] = []

    own_problems = evidence.problems + check_metrics(evidence, metrics)
    rules.append(
        {
            "rule": "has_validation_evidence",
            "metric": config.primary_metric,
            "reference": None,
            "status": "fail" if own_problems else "pass",
            "message": "; ".join(own_problems)
            or f"finite validation metrics on seeds {sorted(evidence.seeds, key=_seed_order)} "
            "and per-user ranks",
        }
    )

    references: list[tuple[str, Evidence]] = []
    if champion is None:
        rules.append(
            {
                "rule": "beats_champion",
                "metric": config.primary_metric,
                "reference": "champion",
                "status": "pass",
                "message": "no champion registered yet: first promotion (the base rule decides)",
            }
        )
    else:
        references.append(("champion", champion))

    base = base_name(name, candidate, config)
    is_base = _is_base(name, candidate, config)
    if is_base:
        status: RuleStatus = "pass" if config.unguided_eligible else "fail"
        rules.append(
            {
                "rule": "beats_base",
                "metric": config.primary_metric,
                "reference": base,
                "status": status,
                "message": "the unguided base itself "
                + ("may be promoted" if status == "pass" else "is not eligible"),
            }
        )
    elif base not in candidates:
        rules.append(
            {
                "rule": "beats_base",
                "metric": config.primary_metric,
                "reference": base,
                "status": "fail",
                "message": f"unguided base {base} is not among the candidates: cannot show a gain",
            }
        )
    else:
        references.append(("base", evidences[base]))

    for suffix, reference in references:
        rules.append(
            compare(
                f"beats_{suffix}", config.primary_metric, "improve", evidence, reference, config
            )
        )
        for guard in config.guard_metrics:
            rules.append(compare(f"guard_vs_{suffix}", guard, "guard", evidence, reference, config))

    primary = evidence.mean(config.primary_metric)
    test_mean = candidate.get("mean") or {}
    return {
        "passed": all(rule["status"] != "fail" for rule in rules),
        "is_base": is_base,
        "split": SELECTION_SPLIT,
        "primary": primary,
        "primary_std": evidence.std(config.primary_metric),
        "metrics": {metric: evidence.mean(metric) for metric in metrics},
        "seeds": {
            seed: {metric: values.get(metric) for metric in metrics}
            for seed, values in sorted(evidence.seeds.items())
        },
        "test_metrics": {metric: _finite_or_none(test_mean.get(metric)) for metric in metrics},
        "registered_seed": representative_seed(evidence, config.primary_metric, primary_direction),
        "seed_rule": SEED_RULE.format(metric=config.primary_metric),
        "failed_rules": [f"{r['rule']}:{r['metric']}" for r in rules if r["status"] == "fail"],
        "rules": rules,
    }


def candidate_evidence(name: str, candidate: Mapping[str, Any]) -> Evidence:
    return parse_evidence(name, candidate.get("valid"))


def champion_evidence(champion: Mapping[str, Any], config: GateConfig) -> Evidence:
    """The champion's evidence (`{"name", "valid", "fixed_model", "problems"}`),
    with every problem that makes it unusable."""
    label = f"champion ({champion.get('name', 'registered model')})"
    problems = list(champion.get("problems") or [])
    evidence = parse_evidence(label, champion.get("valid"), bool(champion.get("fixed_model")))
    evidence.problems = problems + evidence.problems + check_metrics(evidence, gate_metrics(config))
    return evidence


def _ranking_key(name: str, verdict: Mapping[str, Any], direction: Direction) -> tuple:
    """Best first: best primary, then lowest std across seeds, then name."""
    std = verdict.get("primary_std")
    primary = verdict["primary"]
    return (
        -primary if direction == "higher" else primary,
        std if std is not None else math.inf,
        name,
    )


def _champion_summary(champion: Mapping[str, Any] | None, evidence: Evidence | None):
    if champion is None:
        return None
    keep = ("name", "version", "candidate", "data_version", "git_commit", "run_id", "seed")
    summary = {key: champion.get(key) for key in keep if key in champion}
    summary["evidence"] = champion.get("source", "registry tags")
    summary["fixed_model"] = bool(champion.get("fixed_model"))
    if evidence is not None:
        summary["seeds"] = evidence.seeds
        summary["problems"] = evidence.problems
    return summary


def decide(
    metrics_report: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    config: GateConfig,
) -> dict[str, Any]:
    """The gate's decision over every candidate of `reports/metrics.json`.

    Each candidate's evidence is its `valid` block (per-seed metrics, and the
    per-user ranks inlined as `valid.per_user`). `champion`: None, or
    `{"name", "version", "valid": {...}, "fixed_model": bool, "problems": [...]}`
    (`mtrec.lifecycle.steps` builds it from the registry). Returns a JSON-ready
    dict: `action` is "promote" (winner becomes champion), "challenger" (the best
    candidate failed and is kept as challenger) or "none".
    """
    for metric in gate_metrics(config):
        metric_direction(metric, config.directions)  # unknown direction: fail loudly
    direction = metric_direction(config.primary_metric, config.directions)
    candidates: Mapping[str, Mapping[str, Any]] = metrics_report.get("candidates") or {}
    evidences = {name: candidate_evidence(name, c) for name, c in candidates.items()}
    champion_ev = champion_evidence(champion, config) if champion is not None else None
    verdicts = {
        name: evaluate_candidate(name, candidates, evidences, champion_ev, config)
        for name in sorted(candidates)
    }
    ranked = sorted(
        (name for name, verdict in verdicts.items() if verdict["primary"] is not None),
        key=lambda name: _ranking_key(name, verdicts[name], direction),
    )
    passing = [name for name in ranked if verdicts[name]["passed"]]
    tie_note = None
    winner = passing[0] if passing else None
    if len(passing) > 1 and verdicts[passing[0]]["primary"] == verdicts[passing[1]]["primary"]:
        tie_note = (
            f"{passing[0]} and {passing[1]} tie on validation {config.primary_metric}; "
            "broken by lower std over seeds, then by name"
        )

    if winner is not None:
        action = "promote"
        challenger = None
        reason = (
            f"{winner} passes every rule and has the best validation mean "
            f"{config.primary_metric} ({verdicts[winner]['primary']:.6g}) among the "
            f"{len(passing)} passing candidates"
        )
        if champion is None:
            reason += " (first promotion: no champion yet)"
    elif not candidates:
        action, challenger = "none", None
        reason = "no candidates in the metrics report"
    elif not ranked:
        action, challenger = "none", None
        reason = (
            f"no candidate has validation {config.primary_metric} on every seed: "
            "nothing can be ranked"
        )
    else:
        best = ranked[0]
        challenger = best if config.on_fail == "challenger" else None
        action = "challenger" if challenger else "none"
        reason = (
            f"no candidate passes; the best by validation {config.primary_metric} is {best}, "
            "failing "
            + ", ".join(verdicts[best]["failed_rules"])
            + (" — kept as challenger" if challenger else " — not registered (on_fail=nothing)")
        )

    return {
        "action": action,
        "winner": winner,
        "challenger": challenger,
        "reason": reason,
        "selection_split": SELECTION_SPLIT,
        "reported_split": metrics_report.get("split"),
        "tie_break": tie_note,
        "ranking": ranked,
        "champion": _champion_summary(champion, champion_ev),
        "config": config.model_dump(mode="json"),
        "candidates": verdicts,
    }
