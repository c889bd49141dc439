import math

import pytest

from mtrec.config import GateConfig
from mtrec.lifecycle.gate import decide, relative_change, seed_mean


def candidate(backbone, guidance, per_seed):
    """per_seed: {seed: {metric: value}}; mean/std are computed the way evaluate does."""
    metrics = sorted({m for values in per_seed.values() for m in values})
    mean = {m: sum(v[m] for v in per_seed.values()) / len(per_seed) for m in metrics}
    return {
        "backbone": backbone,
        "guidance": guidance,
        "seeds": {str(s): v for s, v in per_seed.items()},
        "mean": mean,
        "std": {m: 0.0 for m in metrics},
        "model_dirs": {str(s): f"models/{backbone}-{guidance}/seed{s}" for s in per_seed},
    }


def m(ndcg_p, auc=0.80, ndcg=0.10):
    return {"NDCG_p@10": ndcg_p, "AUC": auc, "NDCG@10": ndcg}


def report(**cands):
    return {"candidates": {name.replace("_", "-"): c for name, c in cands.items()}}


def test_relative_change_by_hand():
    assert relative_change(0.11, 0.10) == pytest.approx(0.1)
    assert relative_change(-0.9, -1.0) == pytest.approx(0.1)
    assert relative_change(0.0, 0.0) == 0.0
    assert relative_change(0.1, 0.0) == math.inf


def test_seed_mean_averages_seeds_and_missing_seed_is_missing():
    c = candidate("sasrec", "mtrec", {0: m(0.1), 1: m(0.3)})
    assert seed_mean(c, "NDCG_p@10") == pytest.approx(0.2)
    c["seeds"]["1"].pop("NDCG_p@10")
    assert seed_mean(c, "NDCG_p@10") is None


def test_first_passing_candidate_is_promoted_without_champion():
    rep = report(
        sasrec_none=candidate("sasrec", "none", {0: m(0.10), 1: m(0.10)}),
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: m(0.12), 1: m(0.12)}),
    )
    decision = decide(rep, champion=None, config=GateConfig(min_relative_improvement=0.05))
    assert decision["action"] == "promote"
    assert decision["winner"] == "sasrec-mtrec"
    rules = decision["candidates"]["sasrec-mtrec"]["rules"]
    beats_base = next(r for r in rules if r["rule"] == "beats_base")
    assert beats_base["relative_change"] == pytest.approx(0.2)
    assert beats_base["status"] == "pass"


def test_degraded_candidate_is_never_promoted():
    champion = {"name": "mtrec-recommender", "version": "3", "metrics": m(0.15)}
    rep = report(
        sasrec_none=candidate("sasrec", "none", {0: m(0.10)}),
        # Better than base on the primary but far below the champion; AUC collapsed.
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: m(0.12, auc=0.55)}),
    )
    decision = decide(rep, champion=champion, config=GateConfig())
    assert decision["winner"] is None
    assert decision["action"] == "challenger"
    assert decision["challenger"] == "sasrec-mtrec"
    failed = decision["candidates"]["sasrec-mtrec"]["failed_rules"]
    assert "beats_champion:NDCG_p@10" in failed
    assert "guard_vs_base:AUC" in failed
    nothing = decide(rep, champion=champion, config=GateConfig(on_fail="nothing"))
    assert nothing["action"] == "none" and nothing["challenger"] is None


def test_guard_regression_blocks_even_a_primary_gain():
    rep = report(
        gru4rec_none=candidate("gru4rec", "none", {0: m(0.10, ndcg=0.20)}),
        gru4rec_mtrec=candidate("gru4rec", "mtrec", {0: m(0.20, ndcg=0.19)}),  # -5% NDCG@10
    )
    decision = decide(rep, None, GateConfig(guard_tolerance=0.02, unguided_eligible=False))
    assert decision["candidates"]["gru4rec-mtrec"]["failed_rules"] == ["guard_vs_base:NDCG@10"]
    assert decision["action"] == "challenger"
    loose = decide(rep, None, GateConfig(guard_tolerance=0.06))
    assert loose["winner"] == "gru4rec-mtrec"


def test_tie_with_champion_does_not_pass():
    champion = {"name": "mtrec-recommender", "version": "1", "metrics": m(0.12)}
    rep = report(
        sasrec_none=candidate("sasrec", "none", {0: m(0.10)}),
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: m(0.12)}),
    )
    decision = decide(rep, champion, GateConfig())
    assert decision["winner"] is None
    assert "beats_champion:NDCG_p@10" in decision["candidates"]["sasrec-mtrec"]["failed_rules"]


def test_tie_between_passing_candidates_is_broken_and_recorded():
    rep = report(
        sasrec_none=candidate("sasrec", "none", {0: m(0.10)}),
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: m(0.12)}),
        sasrec_cvar=candidate("sasrec", "cvar", {0: m(0.12)}),
    )
    decision = decide(rep, None, GateConfig())
    assert decision["winner"] == "sasrec-cvar"  # same primary, same std: by name
    assert "tie" in decision["tie_break"]


def test_missing_metrics_give_a_clear_decision():
    rep = report(
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: {"AUC": 0.8}}),  # no primary, no base
    )
    decision = decide(rep, None, GateConfig())
    assert decision["action"] == "none"
    assert "nothing can be ranked" in decision["reason"]
    verdict = decision["candidates"]["sasrec-mtrec"]
    assert "has_primary:NDCG_p@10" in verdict["failed_rules"]
    assert "beats_base:NDCG_p@10" in verdict["failed_rules"]
    assert decide({"candidates": {}}, None, GateConfig())["action"] == "none"


def test_champion_missing_a_guard_metric_skips_that_rule():
    champion = {"name": "mtrec-recommender", "version": "1", "metrics": {"NDCG_p@10": 0.05}}
    rep = report(
        sasrec_none=candidate("sasrec", "none", {0: m(0.10)}),
        sasrec_mtrec=candidate("sasrec", "mtrec", {0: m(0.12)}),
    )
    decision = decide(rep, champion, GateConfig())
    assert decision["winner"] == "sasrec-mtrec"
    rules = decision["candidates"]["sasrec-mtrec"]["rules"]
    statuses = {(r["rule"], r["metric"]): r["status"] for r in rules}
    assert statuses[("guard_vs_champion", "AUC")] == "skip"
    assert statuses[("beats_champion", "NDCG_p@10")] == "pass"
