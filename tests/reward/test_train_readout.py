"""Train the reward model on the toy log, read the rewards out, check what comes back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.config import GRU4RecConfig, RewardConfig
from mtrec.data.processed import load_processed
from mtrec.reward.qnetwork import load_qnetwork
from mtrec.reward.readout import KEY_COLUMNS, cvar_columns, read_out_rewards, with_cvar_columns
from mtrec.reward.train import train_reward
from mtrec.training.recommender import attach_exposure_columns

N_QUANTILES = 4


def toy_config(**changes) -> RewardConfig:
    base = dict(
        backbone=GRU4RecConfig(max_history=8, dim=16, hidden_dim=16, dropout=0.0),
        n_quantiles=N_QUANTILES,
        max_epochs=8,
        patience=8,
        window=32,
        windows_per_batch=8,
        learning_rate=3e-3,
        next_item_samples=4,
        device="cpu",
    )
    return RewardConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def trained(toy_processed, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("reward_run")
    paths = train_reward(toy_config(), toy_processed, folder / "model", progress=False)
    irl = train_reward(
        toy_config(objective="iq-learn", n_quantiles=1, max_epochs=1),
        toy_processed,
        folder / "irl",
        progress=False,
    )
    outputs = read_out_rewards(
        paths["model"],
        toy_processed,
        folder / "rewards.parquet",
        folder / "reports",
        irl_model_dir=irl["model"],
        progress=False,
    )
    return paths, outputs


def test_training_writes_a_reloadable_model_and_curves(trained):
    paths, _ = trained
    network = load_qnetwork(paths["model"])
    assert network.n_quantiles == N_QUANTILES
    history = pd.read_csv(paths["history"])
    assert {"epoch", "train_loss", "valid_loss", "valid_action_nll"} <= set(history.columns)
    # The toy log has a ground truth: each epoch records (never selects by) how the
    # validation read-out tracks it.
    assert "truth_valid_spearman__reward_pos_mean" in history.columns
    summary = json.loads(paths["summary"].read_text())
    assert summary["monitor"] == "valid_action_nll"
    assert summary["best_epoch"] == int(history.loc[history["valid_action_nll"].idxmin(), "epoch"])
    assert np.isfinite(history["valid_loss"]).all()
    # The soft-Q policy must beat a coin flip on held-out actions.
    assert history["valid_action_nll"].min() < np.log(2)


def test_rewards_cover_every_exposure_with_keys_and_sorted_quantiles(trained, toy_processed):
    _, outputs = trained
    rewards = pd.read_parquet(outputs["rewards"])
    processed = load_processed(toy_processed)
    assert set(KEY_COLUMNS) <= set(rewards.columns)
    for split in ("train", "valid", "test"):
        frame = processed.split(split)
        # The training step's join accepts it: one reward row per exposure, same keys.
        joined = attach_exposure_columns(frame, split, rewards, ["reward_pos_mean_z"])
        assert len(joined) == len(frame)
    for action in ("pos", "neg"):
        quantiles = rewards[[f"reward_{action}_q{k:02d}" for k in range(1, N_QUANTILES + 1)]]
        assert np.all(np.diff(quantiles.to_numpy(), axis=1) >= -1e-6)
        mean = quantiles.to_numpy().mean(axis=1)
        assert np.allclose(mean, rewards[f"reward_{action}_mean"], atol=1e-5)
        assert (rewards[f"reward_{action}_cvar"] <= rewards[f"reward_{action}_mean"] + 1e-6).all()
    train = rewards[rewards["split"] == "train"]
    pooled = np.concatenate([train["reward_pos_mean_z"], train["reward_neg_mean_z"]])
    assert abs(pooled.mean()) < 1e-6 and abs(pooled.std() - 1) < 1e-6
    assert "irl_reward_pos_mean_z" in rewards.columns
    # Terminal rows: the read-out uses no next state there.
    assert (rewards.loc[rewards["terminal"], "next_value"] == 0).all()


def test_cvar_at_any_level_comes_from_the_stored_quantiles(trained):
    """`mtrec-cvar`'s q is a training option: the CVaR at the read-out's own level,
    re-derived from the stored quantiles, equals the stored column, and at q = 1
    it is the mean reward."""
    _, outputs = trained
    rewards = pd.read_parquet(outputs["rewards"])
    for level, stored in ((toy_config().cvar_level, "cvar"), (1.0, "mean")):
        derived = with_cvar_columns(rewards, level)
        for action, column in zip(("pos", "neg"), cvar_columns(level), strict=True):
            np.testing.assert_allclose(
                derived[column], rewards[f"reward_{action}_{stored}_z"], atol=1e-4
            )
    low, high = with_cvar_columns(rewards, 0.25), with_cvar_columns(rewards, 1.0)
    assert not np.allclose(low[cvar_columns(0.25)[0]], high[cvar_columns(1.0)[0]])
    with pytest.raises(KeyError, match="quantile columns"):
        with_cvar_columns(rewards.drop(columns=[c for c in rewards if "_pos_q0" in c]), 0.5)


def test_disappointing_item_gets_a_lower_reward(trained):
    """The read-outs that are functions of (s, a) rank the disappointing item
    lower. The observed-next-state read-out r(s,1) = Q(s,1) - gamma V(s'_obs) is
    not asserted: a user who leaves after a disappointment has V(s') = 0, which
    raises exactly those rewards (METHOD.md section 6)."""
    _, outputs = trained
    rewards = pd.read_parquet(outputs["rewards"])
    clicks = rewards[rewards["response"] == 1]
    disappointing = clicks["item_idx"] == 1  # item id "1" sorts first
    assert disappointing.sum() > 20
    for column in ("reward_pos_expected", "advantage"):
        gap = clicks.loc[disappointing, column].mean() - clicks.loc[~disappointing, column].mean()
        assert gap < 0, column


def test_reports_are_written(trained):
    _, outputs = trained
    summary = json.loads(outputs["summary"].read_text())
    assert set(summary["recovery"]) == {"train", "valid", "test"}
    assert "spearman_true_reward__reward_pos_mean" in summary["recovery"]["train"]
    # N = 4 quantiles (tau 0.125..0.875) reach the central 60% interval, not the 80% one.
    assert 0.0 <= summary["recovery"]["test"]["calibration__coverage_0.6"] <= 1.0
    assert np.isnan(summary["recovery"]["test"]["calibration__coverage_0.8"])
    by_step = pd.read_csv(outputs["by_step"])
    assert {"step", "mean_reward", "n"} <= set(by_step.columns) and (by_step["n"] >= 20).all()
    by_satisfaction = pd.read_csv(outputs["by_satisfaction"])
    assert set(by_satisfaction["satisfied"]) <= {0.0, 1.0}


def test_the_read_out_takes_its_own_keys_from_params_and_the_rest_from_the_model(
    trained, toy_processed, tmp_path
):
    """dvc.yaml: `reward.cvar_level` / `next_item_samples` rerun read_out_rewards only,
    not train_reward, so the read-out must take them from the current params (not
    from the config saved with the model, which still holds the old values)."""
    from mtrec.reward.readout import READOUT_KEYS, saved_reward_config, with_readout_settings

    paths, outputs = trained
    saved = saved_reward_config(paths["model"])
    current = toy_config(cvar_level=0.75, next_item_samples=2, gamma=0.1, alpha=0.01)
    merged = with_readout_settings(saved, current)
    assert set(READOUT_KEYS) == {"cvar_level", "next_item_samples"}
    assert (merged.cvar_level, merged.next_item_samples) == (0.75, 2)
    assert (merged.gamma, merged.alpha) == (saved.gamma, saved.alpha)  # the model's own
    # The mean reads expected next values over sampled next items, so it moves with
    # next_item_samples; with the same samples, only the CVaR level changes it.
    cvar_only = with_readout_settings(
        saved, toy_config(cvar_level=0.75, next_item_samples=saved.next_item_samples)
    )
    again = read_out_rewards(
        paths["model"],
        toy_processed,
        tmp_path / "r.parquet",
        tmp_path / "rep",
        cvar_only,
        progress=False,
    )
    before = pd.read_parquet(outputs["rewards"])
    after = pd.read_parquet(again["rewards"])
    pd.testing.assert_series_equal(before["reward_pos_mean"], after["reward_pos_mean"])
    assert not np.allclose(before["reward_pos_cvar"], after["reward_pos_cvar"])
