"""The gate's decision as a pure function of validation evidence (no MLflow here;
tests/lifecycle/test_gate_trust.py runs the same rules through the registry)."""

import copy
import math

import numpy as np
import pytest
from helpers import gate_candidate

from mtrec.config import GateConfig
from mtrec.lifecycle.gate import (
    decide,
    metric_direction,
    metric_from_ranks,
    parse_evidence,
    relative_change,
    representative_seed,
)

N_USERS = 400


def base_ranks(seed: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(1, 40, N_USERS).astype(float)


def better(ranks: np.ndarray) -> np.ndarray:
    """Every user's held-out item ranked higher: a clear gain on every seed."""
    return np.maximum(1.0, np.floor(ranks / 2))


def noise(ranks: np.ndarray, seed: int) -> np.ndarray:
    """Same distribution of ranks, users shuffled: no real gain."""
    return np.random.default_rng(200 + seed).permutation(ranks)


def report(**candidates):
    return {
        "split": "test",
        "candidates": {name.replace("_", "-"): c for name, c in candidates.items()},
    }


def pair(mtrec_ranks, seeds=(0, 1), auc=None, base_auc=None):
    """gru4rec-none on base ranks and gru4rec-mtrec on `mtrec_ranks(seed)`."""
    auc = auc or {}
    base_auc = base_auc or {}
    return report(
        gru4rec_none=gate_candidate(
            "gru4rec",
            "none",
            {s: base_ranks(s) for s in seeds},
            extra_by_seed={s: {"AUC": base_auc.get(s, 0.8)} for s in seeds},
        ),
        gru4rec_mtrec=gate_candidate(
            "gru4rec",
            "mtrec",
            {s: mtrec_ranks(s) for s in seeds},
            extra_by_seed={s: {"AUC": auc.get(s, 0.8)} for s in seeds},
        ),
    )


def rule(decision, name, rule_name, metric="NDCG_p@10"):
    rules = decision["candidates"][name]["rules"]
    return next(r for r in rules if r["rule"] == rule_name and r["metric"] == metric)


def test_relative_change_by_hand():
    assert relative_change(0.11, 0.10) == pytest.approx(0.1)
    assert relative_change(-0.9, -1.0) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.1, 0.0) == math.inf


def test_metric_directions_are_declared_not_assumed():
    assert metric_direction("NDCG_p@10") == "higher"
    assert metric_direction("AUC") == "higher"
    assert metric_direction("dNDCG@10") == "higher"
    assert metric_direction("HR_n@10") == "lower"
    assert metric_direction("NDCG_n@5") == "lower"
    assert metric_direction("loss") == "lower"
    assert metric_direction("coverage", {"coverage": "higher"}) == "higher"
    with pytest.raises(ValueError, match="gate.directions"):
        metric_direction("coverage")
    with pytest.raises(ValueError, match="gate.directions"):
        decide(pair(lambda s: better(base_ranks(s))), None, GateConfig(guard_metrics=("coverage",)))


def test_guard_on_a_lower_is_better_metric_is_not_inverted():
    """HR_n@10 (hits on unsatisfying targets) should fall: a candidate that lowers
    it passes the guard, one that raises it fails."""
    config = GateConfig(guard_metrics=("HR_n@10",), unguided_eligible=False)
    satisfied = [float(u % 2) for u in range(N_USERS)]

    def ranks(seed, unsatisfying_factor):
        r = base_ranks(seed).copy()
        # Satisfying targets ranked better (the primary gains); unsatisfying
        # ones moved by the factor (HR_n@10 falls when they are ranked lower).
        r[::2] = np.minimum(200.0, np.ceil(r[::2] * unsatisfying_factor))
        r[1::2] = better(r[1::2])
        return r

    for factor, expected in ((3.0, "pass"), (0.3, "fail")):
        rep = report(
            gru4rec_none=gate_candidate(
                "gru4rec", "none", {s: base_ranks(s) for s in (0, 1)}, satisfied
            ),
            gru4rec_mtrec=gate_candidate(
                "gru4rec", "mtrec", {s: ranks(s, factor) for s in (0, 1)}, satisfied
            ),
        )
        guard = rule(decide(rep, None, config), "gru4rec-mtrec", "guard_vs_base", "HR_n@10")
        assert guard["direction"] == "lower"
        assert guard["status"] == expected, guard["message"]
        assert (guard["relative_gain"] > 0) == (expected == "pass")


def test_first_promotion_registers_the_guided_candidate_only_on_evidence():
    # A clear gain on every seed and over users: the guided candidate becomes the
    # first champion, and the base rule's interval clears zero.
    clear = decide(pair(lambda s: better(base_ranks(s))), None, GateConfig())
    assert clear["action"] == "promote" and clear["winner"] == "gru4rec-mtrec"
    assert "first promotion" in clear["reason"]
    beats = rule(clear, "gru4rec-mtrec", "beats_base")
    assert beats["status"] == "pass" and beats["interval"]["lower"] > 0
    assert beats["interval"]["method"] == "paired bootstrap over seeds and validation users"
    assert beats["seed_pairs"] == [["0", "0"], ["1", "1"]]
    assert rule(clear, "gru4rec-mtrec", "beats_champion")["status"] == "pass"
    # No evidence of a gain: the unguided base is the first champion.
    within_noise = decide(pair(lambda s: noise(base_ranks(s), s)), None, GateConfig())
    assert within_noise["action"] == "promote" and within_noise["winner"] == "gru4rec-none"
    assert "beats_base:NDCG_p@10" in within_noise["candidates"]["gru4rec-mtrec"]["failed_rules"]


def test_a_mean_gain_that_one_seed_contradicts_is_not_promoted():
    """Seed 0 gains a lot, seed 1 loses: the mean gain is well above the old 1%
    margin, but the paired interval over seeds and users reaches below zero."""

    def mtrec(seed):
        return better(base_ranks(seed)) if seed == 0 else np.minimum(40.0, base_ranks(seed) + 4)

    rep = pair(mtrec)
    decision = decide(rep, None, GateConfig(unguided_eligible=False))
    beats = rule(decision, "gru4rec-mtrec", "beats_base")
    assert beats["relative_gain"] > 0.01
    assert beats["interval"]["lower"] < 0 < beats["interval"]["upper"]
    assert beats["status"] == "fail"
    assert decision["winner"] is None and decision["action"] == "challenger"


def test_the_gate_chooses_on_validation_not_on_test():
    rep = pair(lambda s: noise(base_ranks(s), s))
    # The test numbers of mtrec are far better; validation shows no gain.
    for metrics in rep["candidates"]["gru4rec-mtrec"]["seeds"].values():
        metrics["NDCG_p@10"] *= 3
    rep["candidates"]["gru4rec-mtrec"]["mean"]["NDCG_p@10"] *= 3
    decision = decide(rep, None, GateConfig())
    assert decision["selection_split"] == "valid"
    assert decision["winner"] == "gru4rec-none"
    verdict = decision["candidates"]["gru4rec-mtrec"]
    assert verdict["split"] == "valid"
    assert verdict["test_metrics"]["NDCG_p@10"] > 2 * verdict["metrics"]["NDCG_p@10"]


def test_a_candidate_without_validation_evidence_never_passes():
    rep = pair(lambda s: better(base_ranks(s)))
    no_valid = copy.deepcopy(rep)
    del no_valid["candidates"]["gru4rec-mtrec"]["valid"]
    decision = decide(no_valid, None, GateConfig())
    failed = decision["candidates"]["gru4rec-mtrec"]["failed_rules"]
    assert "has_validation_evidence:NDCG_p@10" in failed
    assert decision["winner"] == "gru4rec-none"
    # Per-user ranks that do not reproduce the seed's metric: inconsistent evidence.
    tampered = copy.deepcopy(rep)
    tampered["candidates"]["gru4rec-mtrec"]["valid"]["seeds"]["1"]["NDCG_p@10"] *= 1.5
    beats = rule(decide(tampered, None, GateConfig()), "gru4rec-mtrec", "beats_base")
    assert beats["status"] == "fail" and "inconsistent" in beats["message"]
    # A NaN on one seed.
    nan = copy.deepcopy(rep)
    nan["candidates"]["gru4rec-mtrec"]["valid"]["seeds"]["0"]["NDCG_p@10"] = float("nan")
    verdict = decide(nan, None, GateConfig())["candidates"]["gru4rec-mtrec"]
    assert not verdict["passed"] and verdict["primary"] is None


@pytest.mark.parametrize(
    "problem",
    ["tag mtrec.valid_seeds is missing", "tag mtrec.valid_seeds is not valid JSON (...)"],
)
def test_a_champion_with_unusable_evidence_fails_every_champion_rule(problem):
    rep = pair(lambda s: better(base_ranks(s)))
    champion = {"name": "m@champion", "version": "1", "valid": None, "problems": [problem]}
    decision = decide(rep, champion, GateConfig())
    assert decision["winner"] is None
    for name in ("gru4rec-none", "gru4rec-mtrec"):
        beats = rule(decision, name, "beats_champion")
        assert beats["status"] == "fail" and problem in beats["message"]
    assert decision["champion"]["problems"][0] == problem


def test_champion_with_nan_or_missing_guard_evidence_fails():
    rep = pair(lambda s: better(base_ranks(s)))
    stored = copy.deepcopy(rep["candidates"]["gru4rec-none"]["valid"])
    champion = {"name": "m@champion", "version": "1", "valid": stored}
    # Complete evidence: the clear gain beats the champion (the base's evidence).
    assert decide(rep, champion, GateConfig())["winner"] == "gru4rec-mtrec"
    for broken in ("nan", "missing"):
        bad = copy.deepcopy(champion)
        for metrics in bad["valid"]["seeds"].values():
            if broken == "nan":
                metrics["AUC"] = float("nan")
            else:
                metrics.pop("AUC")
        decision = decide(rep, bad, GateConfig())
        assert decision["winner"] is None, broken
        guard = rule(decision, "gru4rec-mtrec", "guard_vs_champion", "AUC")
        assert guard["status"] == "fail" and "no finite validation AUC" in guard["message"]


def test_a_re_scored_champion_is_one_model_compared_with_every_seed():
    rep = pair(lambda s: better(base_ranks(s)))
    base_valid = rep["candidates"]["gru4rec-none"]["valid"]
    one_seed = {
        "seeds": {"1": base_valid["seeds"]["1"]},
        "per_user": base_valid["per_user"] | {"ranks": {"1": base_valid["per_user"]["ranks"]["1"]}},
    }
    champion = {"name": "m@champion", "version": "1", "valid": one_seed, "fixed_model": True}
    decision = decide(rep, champion, GateConfig())
    beats = rule(decision, "gru4rec-mtrec", "beats_champion")
    assert beats["seed_pairs"] == [["0", "1"], ["1", "1"]]
    assert beats["status"] == "pass"


def test_registered_seed_is_the_lower_median_by_validation_primary():
    evidence = parse_evidence(
        "c", {"seeds": {"0": {"m": 0.3}, "1": {"m": 0.1}, "2": {"m": 0.2}}, "per_user": None}
    )
    assert representative_seed(evidence, "m", "higher") == "2"
    assert representative_seed(evidence, "m", "lower") == "2"
    two = parse_evidence("c", {"seeds": {"0": {"m": 0.3}, "1": {"m": 0.1}}})
    assert representative_seed(two, "m", "higher") == "1"  # the worse of two
    assert representative_seed(two, "m", "lower") == "0"
    decision = decide(pair(lambda s: better(base_ranks(s))), None, GateConfig())
    verdict = decision["candidates"]["gru4rec-mtrec"]
    worse = min(verdict["seeds"], key=lambda s: verdict["seeds"][s]["NDCG_p@10"])
    assert verdict["registered_seed"] == worse
    assert "lower median" in verdict["seed_rule"]


def test_metric_from_ranks_matches_the_evaluation_functions():
    from mtrec.evaluation.metrics import ranking_metrics, satisfaction_split

    ranks = base_ranks(0)
    satisfied = np.array([float(u % 3 == 0) if u % 5 else np.nan for u in range(N_USERS)])
    expected = ranking_metrics(ranks, (5, 10)) | satisfaction_split(ranks, satisfied, (5, 10))
    for metric in ("HR@5", "NDCG@10", "MRR@10", "HR_p@10", "NDCG_n@5", "dNDCG@10"):
        assert metric_from_ranks(metric, ranks, satisfied) == pytest.approx(expected[metric])


def test_guard_regression_blocks_even_a_primary_gain():
    rep = pair(lambda s: better(base_ranks(s)), auc={0: 0.70, 1: 0.71})  # AUC -12%
    decision = decide(rep, None, GateConfig(unguided_eligible=False))
    assert decision["candidates"]["gru4rec-mtrec"]["failed_rules"] == ["guard_vs_base:AUC"]
    guard = rule(decision, "gru4rec-mtrec", "guard_vs_base", "AUC")
    assert guard["interval"]["method"] == "paired t over seeds"
    assert guard["interval"]["upper"] < 0
    assert decision["action"] == "challenger"
    loose = decide(rep, None, GateConfig(guard_tolerance=0.2))
    assert loose["winner"] == "gru4rec-mtrec"


def test_tie_between_passing_candidates_is_broken_and_recorded():
    rep = pair(lambda s: better(base_ranks(s)))
    twin = copy.deepcopy(rep["candidates"]["gru4rec-mtrec"])
    twin["guidance"] = "cvar"
    rep["candidates"]["gru4rec-cvar"] = twin
    decision = decide(rep, None, GateConfig())
    assert decision["winner"] == "gru4rec-cvar"  # same primary, same std: by name
    assert "tie" in decision["tie_break"]


def test_missing_metrics_give_a_clear_decision():
    rep = report(sasrec_mtrec={"backbone": "sasrec", "guidance": "mtrec", "seeds": {}})
    decision = decide(rep, None, GateConfig())
    assert decision["action"] == "none"
    assert "nothing can be ranked" in decision["reason"]
    verdict = decision["candidates"]["sasrec-mtrec"]
    assert "has_validation_evidence:NDCG_p@10" in verdict["failed_rules"]
    assert "beats_base:NDCG_p@10" in verdict["failed_rules"]
    assert decide({"candidates": {}}, None, GateConfig())["action"] == "none"
