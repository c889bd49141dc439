"""The supervised ceiling / state regression on the toy log: the truth depends on
the item alone (disappointing item -1, others +1), so a model of (h, i) fitted on
train clicks must rank held-out clicks almost perfectly."""

from __future__ import annotations

import numpy as np
import torch

from mtrec.config import GRU4RecConfig, RewardConfig
from mtrec.data.processed import load_processed
from mtrec.evaluation.metrics import spearman
from mtrec.reward.ceiling import fit_supervised_ceiling
from mtrec.reward.mdp import concat_splits
from mtrec.reward.train import behaviour_only


def test_ceiling_learns_an_item_level_truth(toy_processed):
    processed = load_processed(toy_processed)
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(frames)["true_reward"].to_numpy()
    config = RewardConfig(
        backbone=GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0),
        n_quantiles=1,
        learning_rate=1e-2,
        device="cpu",
    )
    predictions, history = fit_supervised_ceiling(
        config, log, truth, processed.n_items, torch.device("cpu"), max_epochs=8, patience=2
    )
    assert predictions.shape == (len(log),) and np.isfinite(predictions).all()
    assert history[-1]["epoch"] >= 2
    test = (log["split"] == "test").to_numpy() & np.isfinite(truth)
    assert spearman(predictions[test], truth[test]) > 0.5
