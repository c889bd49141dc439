"""Two-stage DIN: a co-visitation candidate stage, DIN re-ranking its K items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import write_toy_processed

from mtrec.config import DINConfig, EvaluateConfig
from mtrec.data.processed import load_processed
from mtrec.evaluation.evaluate import prepare_split, score_split_with_ranks
from mtrec.models import build_model, load_model, save_model
from mtrec.models.candidates import candidate_scores, covisitation_table

N_ITEMS = 30


def _log(sequences: dict[int, list[tuple[int, int]]]) -> pd.DataFrame:
    rows = [
        {"user_idx": user, "item_idx": item, "response": response}
        for user, events in sequences.items()
        for item, response in events
    ]
    return pd.DataFrame(rows)


def test_covisitation_weights_by_distance_and_direction():
    # user 1 clicks 1, 2, 3 (and skips 9); user 2 clicks 1, 2
    log = _log({1: [(1, 1), (9, 0), (2, 1), (3, 1)], 2: [(1, 1), (2, 1)]})
    table, weights, popularity = covisitation_table(log, n_items=9, neighbours=4, window=2)
    # Item 1: 1 -> 2 twice at distance 1 (weight 1 each), 1 -> 3 once at distance 2 (1/2).
    assert table[1, :2].tolist() == [2, 3]
    assert weights[1, :2].tolist() == pytest.approx([2.0 / 2.5, 0.5 / 2.5])
    # Item 3: clicked after 2 (backward, 1/2) and after 1 at distance 2 (backward, 1/4).
    assert table[3, :2].tolist() == [2, 1]
    assert weights[3, :2].tolist() == pytest.approx([0.5 / 0.75, 0.25 / 0.75])
    # A skipped item has no neighbours and is nobody's; padding has none.
    assert weights[9].sum() == 0 and not (table[weights > 0] == 9).any()
    assert weights[0].sum() == 0
    assert popularity.tolist()[:4] == [0.0, 1.0, 1.0, 0.5]


def test_covisitation_keeps_the_strongest_neighbours_and_refuses_an_unsorted_log():
    log = _log({1: [(1, 1), (2, 1), (1, 1), (2, 1), (1, 1), (3, 1)]})
    table, weights, _ = covisitation_table(log, n_items=3, neighbours=1, window=1)
    assert table[1].tolist() == [2] and weights[1].tolist() == [1.0]
    unsorted = _log({2: [(1, 1)], 1: [(2, 1)]})
    with pytest.raises(ValueError, match="sorted by user_idx"):
        covisitation_table(unsorted, n_items=3, neighbours=1)


def test_candidate_scores_follow_the_latest_positive_and_mask_the_history():
    table = torch.zeros(6, 1, dtype=torch.long)
    weights = torch.zeros(6, 1)
    table[1, 0], table[2, 0] = 4, 5
    weights[1, 0] = weights[2, 0] = 1.0
    popularity = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    scores = candidate_scores(torch.tensor([[1, 2, 0]]), table, weights, popularity)
    # 2 is the latest positive: its neighbour 5 beats 1's neighbour 4, and both
    # beat the popular item 3; the history and padding are never candidates.
    assert scores[0, 5] > scores[0, 4] > scores[0, 3] > 0
    assert torch.isneginf(scores[0, [0, 1, 2]]).all()


def _din(candidates: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = DINConfig(
        max_history=6, dim=8, attention_hidden=5, mlp_hidden=(10,), score_chunk=7,
        candidates=candidates, candidate_neighbours=5,
    )  # fmt: skip
    return build_model(config, N_ITEMS).eval()


def _train_log() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    sequences = {u: [(int(i), 1) for i in rng.integers(1, N_ITEMS + 1, 12)] for u in range(20)}
    return _log(sequences)


def test_two_stage_scores_are_dins_logits_on_the_candidates_and_minus_inf_elsewhere():
    full, two_stage = _din(0), _din(8)
    two_stage.fit_candidates(_train_log())
    history = torch.tensor([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]])
    picked = two_stage.candidate_items(history)
    assert picked.shape == (3, 8) and (picked > 0).all()
    scores, reference = two_stage.score_all(history), full.score_all(history)
    for row in range(3):
        finite = torch.isfinite(scores[row]).nonzero().squeeze(1)
        assert sorted(finite.tolist()) == sorted(picked[row].tolist())
        assert torch.allclose(scores[row, finite], reference[row, finite], atol=1e-5)
        assert not set(picked[row].tolist()) & set(history[row].tolist())


def test_the_candidate_table_is_saved_with_the_weights(tmp_path):
    model = _din(8)
    with pytest.raises(RuntimeError, match="never fitted"):
        model.score_all(torch.tensor([[1, 2, 0, 0, 0, 0]]))
    model.fit_candidates(_train_log())
    save_model(model, tmp_path / "din")
    loaded = load_model(tmp_path / "din").eval()
    history = torch.tensor([[1, 2, 0, 0, 0, 0]])
    assert torch.equal(loaded.candidate_items(history), model.candidate_items(history))
    assert torch.equal(loaded.score_all(history), model.score_all(history))
    with pytest.raises(ValueError, match="scores every item"):
        _din(0).fit_candidates(_train_log())


def test_evaluation_reports_candidate_recall_and_every_candidate_ranks_as_full_scoring(
    tmp_path,
):
    data = load_processed(write_toy_processed(tmp_path / "processed", n_items=N_ITEMS))
    inputs = prepare_split(data, "test", max_history=6)
    config = EvaluateConfig(device="cpu", batch_size=16, ks=(5, 10))
    full = _din(0)
    everything, few = _din(N_ITEMS), _din(3)
    for model in (everything, few):
        model.fit_candidates(data.train)
    full_metrics, full_ranks = score_split_with_ranks(full, inputs, config)
    all_metrics, all_ranks = score_split_with_ranks(everything, inputs, config)
    few_metrics, few_ranks = score_split_with_ranks(few, inputs, config)
    # K = the catalogue: every unseen item is a candidate, so every rank is unchanged.
    assert all_metrics["candidate_recall"] == 1.0
    np.testing.assert_array_equal(all_ranks, full_ranks)
    assert "candidate_recall" not in full_metrics
    # K = 3: a retrieved target keeps DIN's order among the candidates (rank <= 3);
    # a missed one ranks below all of them.
    hit = few_ranks <= 3
    assert hit.mean() == pytest.approx(few_metrics["candidate_recall"])
    assert 0.0 < few_metrics["candidate_recall"] < 1.0
    assert (few_ranks[hit] <= full_ranks[hit]).all()


def test_training_a_two_stage_din_fits_its_candidate_stage_on_the_train_split(
    toy_processed_dir, tmp_path
):
    from mtrec.config import RecommenderConfig, TrainConfig
    from mtrec.training import train_recommender

    torch.set_num_threads(1)
    din = DINConfig(max_history=6, dim=8, attention_hidden=5, mlp_hidden=(10,), candidates=5)
    config = RecommenderConfig(
        backbones=("din",),
        seeds=(0,),
        din=din,
        train=TrainConfig(max_epochs=1, batch_size=4, learning_rate=0.01),
    )
    summary = train_recommender(config, "din", "none", toy_processed_dir, tmp_path / "c")
    model = load_model(Path(summary["seeds"]["0"]["model_dir"])).eval()
    data = load_processed(toy_processed_dir)
    table, weights, _ = covisitation_table(data.train, data.n_items, neighbours=100)
    assert bool(model.candidates_fitted)
    assert torch.equal(model.candidate_table, table)
    assert torch.equal(model.candidate_weights, weights)
