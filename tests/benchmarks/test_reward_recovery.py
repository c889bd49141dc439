"""The reward-recovery benchmark's own logic (benchmarks/reward_recovery.py)."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import pytest

from mtrec.reward.mdp import concat_splits


@pytest.fixture(scope="module")
def recovery():
    return importlib.import_module("reward_recovery")  # on sys.path via helpers


def test_distillation_targets_drop_only_futures_the_split_cut_off(recovery):
    """User 1 clicks at its last train row (its future lies in valid: cut off, no
    target) and leaves after its last click (terminal for real: target kept);
    user 2 leaves a session (terminal by the session gap: target kept)."""

    def frame(users, items, clicks):
        return pd.DataFrame(
            {
                "user_idx": users,
                "item_idx": items,
                "timestamp": range(len(users)),
                "response": clicks,
            }
        )

    log = concat_splits(
        {
            "train": frame([1, 1, 2, 2], [1, 2, 3, 5], [1, 1, 1, 0]),
            "valid": frame([1], [4], [1]),
        }
    )
    # Log order: user 1 train (1, 2), user 1 valid (4), user 2 train (3, then 5 a day later).
    rewards = log.assign(
        next_value=[2.0, 0.0, 0.0, 0.0, 0.0],
        q_pos=[1.0, 1.0, 1.0, 1.0, 1.0],
        terminal=[False, True, True, True, True],
    )
    baselines = pd.DataFrame({"continuation": [1.0, 0.0, 0.0, 0.0, 0.0]})
    targets = recovery.distillation_targets(rewards, baselines, log, gamma=0.5)
    next_value = targets["distilled_next_value"]
    assert next_value[0] == 2.0
    assert np.isnan(next_value[1])  # user 1's last train row: the split cut its future
    assert next_value[2] == 0.0  # user 1's last row of the log: the user left
    assert next_value[3] == 0.0  # user 2 left the session: its outcome, kept
    assert np.isnan(next_value[4])  # not a click
    np.testing.assert_allclose(
        targets["distilled_q_plus_next_value"], [2.0, np.nan, 1.0, 1.0, np.nan]
    )


def test_world_references_read_the_hidden_world_and_only_where_there_is_one(recovery, tmp_path):
    from mtrec.config import SimulatorConfig
    from mtrec.simulator.world import make_world, save_world

    sim = SimulatorConfig(n_users=4, n_items=6)
    world = make_world(sim)
    truth = pd.DataFrame({"user_id": ["1", "3"], "item_id": ["2", "6"]})
    assert recovery.world_references(truth, tmp_path) == {}  # ML-100k: no world
    save_world(world, tmp_path / "simulator_truth.npz")
    (tmp_path / "simulator_config.json").write_text(sim.model_dump_json())
    refs = recovery.world_references(truth, tmp_path)
    users, items = np.array([0, 2]), np.array([1, 5])
    fit = (world.user_preferences[users] * world.item_topics[items]).sum(axis=1)
    np.testing.assert_allclose(
        refs["world_expected_reward"],
        sim.reward_bias
        + sim.reward_fit_weight * fit
        + sim.reward_quality_weight * world.item_quality[items],
    )
    np.testing.assert_allclose(refs["world_item_quality"], world.item_quality[items])
    bait = world.user_susceptibility[users] * world.item_clickbait[items]
    np.testing.assert_allclose(
        refs["world_click_logit"],
        sim.click_bias + sim.click_fit_weight * fit + sim.click_bait_weight * bait,
    )


def test_read_outs_are_paired_with_every_baseline_over_seeds(recovery):
    def run(mean, expected, proxy, advantage):
        return {
            "recovery": {
                "test": {
                    "spearman_true_reward__reward_pos_mean": mean,
                    "spearman_true_reward__reward_pos_expected": expected,
                    "spearman_true_reward__advantage": advantage,
                    "spearman_true_reward__item_continuation": proxy,
                }
            }
        }

    runs = [run(0.6, 0.5, 0.5, 0.1), run(0.7, 0.5, 0.5, 0.2), run(0.8, 0.5, 0.6, 0.3)]
    paired = recovery.paired_against_baselines(runs, "test")
    entry = paired["spearman_true_reward__reward_pos_mean - item_continuation"]
    assert entry["diff_mean"] == pytest.approx(0.5 / 3) and entry["n_seeds"] == 3
    assert entry["lower"] < entry["diff_mean"] < entry["upper"]
    assert "spearman_true_reward__reward_pos_expected - item_continuation" in paired
    # Read-outs are not baselines of each other.
    assert not any(key.endswith(("- advantage", "- reward_pos_expected")) for key in paired)
