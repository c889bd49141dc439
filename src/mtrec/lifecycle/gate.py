"""The offline-metric gate: pure functions from metrics dicts to a decision.

A candidate (`<backbone>-<guidance>`) may become champion when its primary
metric, averaged over seeds, beats both the current champion and the unguided
base of the same backbone by more than a relative margin, and no guard metric
drops by more than a tolerance against either. The winner is the best
candidate that passes. Nothing here touches MLflow or files: the decision is a
plain dict that `reports/gate.json` stores as is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from mtrec.config import GateConfig

RuleStatus = Literal["pass", "fail", "skip"]


def relative_change(candidate: float, reference: float) -> float:
    """`(candidate - reference) / |reference|`; ±inf or 0 when the reference is 0."""
    if reference == 0.0:
        if candidate == reference:
            return 0.0
        return math.inf if candidate > reference else -math.inf
    return (candidate - reference) / abs(reference)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def seed_mean(candidate: Mapping[str, Any], metric: str) -> float | None:
    """The candidate's metric averaged over seeds, or None when it is missing.

    Uses the per-seed values when present (a seed lacking the metric makes it
    missing: a partial average would flatter the candidate), else `mean`.
    """
    seeds = candidate.get("seeds") or {}
    if seeds:
        values = [_finite_or_none((m or {}).get(metric)) for m in seeds.values()]
        if any(v is None for v in values):
            return None
        return sum(values) / len(values)
    return _finite_or_none((candidate.get("mean") or {}).get(metric))


def _rule(
    rule: str,
    metric: str,
    reference_name: str,
    candidate_value: float | None,
    reference_value: float | None,
    threshold: float,
    kind: Literal["improve", "guard"],
) -> dict[str, Any]:
    """One comparison. `improve`: relative change > threshold. `guard`: >= -threshold."""
    record: dict[str, Any] = {
        "rule": rule,
        "metric": metric,
        "reference": reference_name,
        "candidate_value": candidate_value,
        "reference_value": reference_value,
        "relative_change": None,
        "threshold": threshold if kind == "improve" else -threshold,
    }
    if candidate_value is None:
        record |= {"status": "fail", "message": f"candidate has no value for {metric}"}
        return record
    if reference_value is None:
        record |= {
            "status": "skip",
            "message": f"{reference_name} has no value for {metric}: nothing to compare",
        }
        return record
    change = relative_change(candidate_value, reference_value)
    record["relative_change"] = change
    if kind == "improve":
        passed = change > threshold
        verb = "beats" if passed else "does not beat"
        message = (
            f"{metric} {candidate_value:.6g} {verb} {reference_name} {reference_value:.6g} "
            f"by more than {threshold:.2%} (relative change {change:+.2%})"
        )
    else:
        passed = change >= -threshold
        verb = "within" if passed else "drops beyond"
        message = (
            f"{metric} {candidate_value:.6g} vs {reference_name} {reference_value:.6g}: "
            f"{verb} the {threshold:.2%} tolerance (relative change {change:+.2%})"
        )
    record |= {"status": "pass" if passed else "fail", "message": message}
    return record


def base_name(candidate_name: str, candidate: Mapping[str, Any], config: GateConfig) -> str:
    backbone = candidate.get("backbone") or candidate_name.split("-", 1)[0]
    return f"{backbone}-{config.base_guidance}"


def _is_base(candidate_name: str, candidate: Mapping[str, Any], config: GateConfig) -> bool:
    guidance = candidate.get("guidance")
    if guidance is None:
        guidance = candidate_name.split("-", 1)[1] if "-" in candidate_name else ""
    return guidance == config.base_guidance


def evaluate_candidate(
    name: str,
    candidates: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Any] | None,
    config: GateConfig,
) -> dict[str, Any]:
    """Every rule for one candidate against the champion and its unguided base."""
    candidate = candidates[name]
    metrics = (config.primary_metric, *config.guard_metrics)
    values = {metric: seed_mean(candidate, metric) for metric in metrics}
    rules: list[dict[str, Any]] = []

    # References: the champion (if any) and the same backbone's unguided base.
    references: list[tuple[str, Mapping[str, Any] | None]] = []
    if champion is not None:
        champion_label = f"champion ({champion.get('name', 'registered model')})"
        references.append((champion_label, champion.get("metrics") or {}))
    else:
        rules.append(
            {
                "rule": "beats_champion",
                "metric": config.primary_metric,
                "reference": "champion",
                "status": "skip",
                "message": "no champion registered yet",
            }
        )

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
        base_metrics = {metric: seed_mean(candidates[base], metric) for metric in metrics}
        references.append((base, base_metrics))

    for reference_name, reference_metrics in references:
        rule_suffix = "champion" if reference_name.startswith("champion") else "base"
        reference_metrics = reference_metrics or {}
        rules.append(
            _rule(
                f"beats_{rule_suffix}",
                config.primary_metric,
                reference_name,
                values[config.primary_metric],
                _finite_or_none(reference_metrics.get(config.primary_metric)),
                config.min_relative_improvement,
                "improve",
            )
        )
        for guard in config.guard_metrics:
            rules.append(
                _rule(
                    f"guard_vs_{rule_suffix}",
                    guard,
                    reference_name,
                    values[guard],
                    _finite_or_none(reference_metrics.get(guard)),
                    config.guard_tolerance,
                    "guard",
                )
            )

    if values[config.primary_metric] is None:
        rules.append(
            {
                "rule": "has_primary",
                "metric": config.primary_metric,
                "reference": None,
                "status": "fail",
                "message": f"{config.primary_metric} missing or NaN for at least one seed",
            }
        )

    passed = all(rule["status"] != "fail" for rule in rules)
    return {
        "passed": passed,
        "is_base": is_base,
        "primary": values[config.primary_metric],
        "primary_std": _finite_or_none((candidate.get("std") or {}).get(config.primary_metric)),
        "metrics": values,
        "failed_rules": [f"{r['rule']}:{r['metric']}" for r in rules if r["status"] == "fail"],
        "rules": rules,
    }


def _ranking_key(name: str, verdict: Mapping[str, Any]) -> tuple:
    """Best first: highest primary, then lowest std across seeds, then name."""
    std = verdict.get("primary_std")
    return (-verdict["primary"], std if std is not None else math.inf, name)


def decide(
    metrics_report: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    config: GateConfig,
) -> dict[str, Any]:
    """The gate's decision over every candidate of `reports/metrics.json`.

    `champion`: None, or `{"name": ..., "version": ..., "metrics": {metric: mean}}`.
    Returns a JSON-ready dict: `action` is "promote" (winner becomes champion),
    "challenger" (the best candidate failed and is kept as challenger) or "none".
    """
    candidates: Mapping[str, Mapping[str, Any]] = metrics_report.get("candidates") or {}
    verdicts = {
        name: evaluate_candidate(name, candidates, champion, config) for name in sorted(candidates)
    }
    ranked = sorted(
        (name for name, verdict in verdicts.items() if verdict["primary"] is not None),
        key=lambda name: _ranking_key(name, verdicts[name]),
    )
    passing = [name for name in ranked if verdicts[name]["passed"]]
    tie_note = None
    winner = passing[0] if passing else None
    if len(passing) > 1 and verdicts[passing[0]]["primary"] == verdicts[passing[1]]["primary"]:
        tie_note = (
            f"{passing[0]} and {passing[1]} tie on {config.primary_metric}; "
            "broken by lower std over seeds, then by name"
        )

    if winner is not None:
        action = "promote"
        challenger = None
        reason = (
            f"{winner} passes every rule and has the best mean {config.primary_metric} "
            f"({verdicts[winner]['primary']:.6g}) among the {len(passing)} passing candidates"
        )
    elif not candidates:
        action, challenger = "none", None
        reason = "no candidates in the metrics report"
    elif not ranked:
        action, challenger = "none", None
        reason = f"no candidate has {config.primary_metric}: nothing can be ranked"
    else:
        best = ranked[0]
        challenger = best if config.on_fail == "challenger" else None
        action = "challenger" if challenger else "none"
        reason = (
            f"no candidate passes; the best by {config.primary_metric} is {best}, failing "
            + ", ".join(verdicts[best]["failed_rules"])
            + (" — kept as challenger" if challenger else " — not registered (on_fail=nothing)")
        )

    return {
        "action": action,
        "winner": winner,
        "challenger": challenger,
        "reason": reason,
        "tie_break": tie_note,
        "ranking": ranked,
        "champion": dict(champion) if champion is not None else None,
        "config": config.model_dump(mode="json"),
        "candidates": verdicts,
    }
