"""What `evaluate` hands the gate: each seed's chosen checkpoint on validation,
with the per-user ranks that reproduce its ranking metrics."""

from __future__ import annotations

import json

import pytest
import torch

from mtrec.config import EvaluateConfig, GateConfig, GRU4RecConfig, RecommenderConfig, TrainConfig
from mtrec.evaluation.evaluate import evaluate_candidates
from mtrec.lifecycle.gate import decide, metric_from_ranks, parse_evidence
from mtrec.lifecycle.steps import with_per_user_evidence
from mtrec.training import train_recommender


def test_evaluate_writes_the_validation_evidence_the_gate_chooses_on(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = RecommenderConfig(
        seeds=(0, 1),
        gru4rec=GRU4RecConfig(max_history=6, dim=8, hidden_dim=8, dropout=0.0),
        train=TrainConfig(max_epochs=2, batch_size=8, device="cpu"),
    )
    models = tmp_path / "models"
    summary = train_recommender(
        config, "gru4rec", "none", toy_processed_dir, models / "gru4rec-none"
    )
    reports = tmp_path / "reports"
    evaluate = EvaluateConfig(device="cpu", ks=(5, 10))
    report = evaluate_candidates(evaluate, toy_processed_dir, models, reports, progress=False)
    assert report["split"] == "test" and report["selection_split"] == "valid"
    entry = report["candidates"]["gru4rec-none"]
    assert json.loads((reports / "metrics.json").read_text())["candidates"]["gru4rec-none"] == entry
    for seed, seed_summary in summary["seeds"].items():
        # The chosen checkpoint's validation metrics, as training chose it on them.
        chosen = seed_summary["valid"]
        for metric in ("NDCG@10", "AUC", "NDCG_p@10"):
            assert entry["valid"]["seeds"][seed][metric] == pytest.approx(chosen[metric])
        assert entry["valid"]["seeds"][seed] != entry["seeds"][seed]  # not the test numbers

    inlined = with_per_user_evidence(report, tmp_path)
    evidence = parse_evidence("gru4rec-none", inlined["candidates"]["gru4rec-none"]["valid"])
    assert evidence.problems == []
    assert set(evidence.ranks) == {"0", "1"}
    for seed in ("0", "1"):
        for metric in ("HR@5", "NDCG@10", "NDCG_p@10", "HR_n@10", "dNDCG@10"):
            stored = entry["valid"]["seeds"][seed][metric]
            assert metric_from_ranks(metric, evidence.ranks[seed], evidence.satisfied) == (
                pytest.approx(stored)
            )
    decision = decide(inlined, None, GateConfig())
    verdict = decision["candidates"]["gru4rec-none"]
    assert verdict["passed"], verdict["failed_rules"]  # the base: complete evidence suffices
    assert decision["winner"] == "gru4rec-none" and decision["selection_split"] == "valid"
