"""The comparison runner on the tiny processed fixture."""

from __future__ import annotations

import json

import pytest

from mtrec.baselines.compare import compare_guidances, markdown_table
from mtrec.config import EvaluateConfig, RecommenderConfig, SASRecConfig, TrainConfig
from mtrec.models import load_model


def _config(max_epochs: int = 3) -> RecommenderConfig:
    return RecommenderConfig(
        backbones=("sasrec",),
        seeds=(0,),
        sasrec=SASRecConfig(max_history=8, dim=16, n_layers=1, n_heads=2, ffn_dim=32, dropout=0.1),
        guidance_options={"pnfrec": {"negative_weight": 0.45, "contrast_weight": 0.25}},
        train=TrainConfig(
            max_epochs=max_epochs,
            patience=5,
            batch_size=4,
            learning_rate=0.01,
            device="cpu",
            num_threads=1,
        ),
    )


def test_baselines_trained_on_dislikes_rank_satisfying_targets_first(toy_processed_dir, tmp_path):
    # In the toy log every odd item is rated 2 (disliked) and every even one 5:
    # the baselines that may read ratings must push the disliked items down.
    report = compare_guidances(
        _config(),
        EvaluateConfig(device="cpu", ks=(10,)),
        toy_processed_dir,
        tmp_path,
        guidances=("none", "ntr", "pnfrec"),
        seeds=(0,),
    )
    candidates = report["candidates"]
    assert set(candidates) == {"sasrec-none", "sasrec-ntr", "sasrec-pnfrec"}
    assert candidates["sasrec-none"]["mean"]["AUC"] > 0.6
    for name in ("sasrec-ntr", "sasrec-pnfrec"):
        assert candidates[name]["trains_on_satisfaction"] is True
        mean = candidates[name]["mean"]
        assert mean["NDCG_p@10"] - mean["NDCG_n@10"] > 0.2
        assert mean["HR_n@10"] < candidates["sasrec-none"]["mean"]["HR_n@10"]
    assert candidates["sasrec-none"]["trains_on_satisfaction"] is False
    for entry in candidates.values():
        model = load_model(entry["seeds"]["0"]["model_dir"], device="cpu")
        assert model.kind == "sasrec"
    written = json.loads((tmp_path / "comparison.json").read_text())
    # Scored by the pipeline's evaluate step, in its layout.
    scored = json.loads((tmp_path / "metrics.json").read_text())
    assert scored["candidates"].keys() == candidates.keys()
    assert written["candidates"].keys() == candidates.keys()
    run = written["candidates"]["sasrec-pnfrec"]["seeds"]["0"]
    assert len(run["history"]) == 3 and 1 <= run["best_epoch"] <= 3
    best_valid = max(row["valid_NDCG@10"] for row in run["history"])
    assert run["history"][run["best_epoch"] - 1]["valid_NDCG@10"] == best_valid
    table = (tmp_path / "comparison.md").read_text()
    assert "sasrec-pnfrec | yes | 1 |" in table and table == markdown_table(report)


def test_a_guidance_not_allowed_satisfaction_cannot_read_it(toy_processed_dir, tmp_path):
    from mtrec.training.losses import Loss, register_guidance

    class _Peeking(Loss):
        required_columns = ("rating",)

        def forward(self, batch, outputs):  # pragma: no cover - never trained
            return outputs.logits.sum()

    register_guidance("test-peeking")(lambda options, context: _Peeking())
    with pytest.raises(ValueError, match="may not train on satisfaction"):
        compare_guidances(
            _config(1),
            EvaluateConfig(device="cpu", ks=(10,)),
            toy_processed_dir,
            tmp_path,
            guidances=("test-peeking",),
            seeds=(0,),
        )
