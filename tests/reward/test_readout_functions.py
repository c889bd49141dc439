from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.reward.readout import (
    add_normalised,
    cvar_columns,
    cvar_of_quantiles,
    reward_by_step,
    reward_from_quantiles,
    with_cvar_columns,
)


def test_cvar_is_the_mean_of_the_lowest_quantiles():
    quantiles = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    assert cvar_of_quantiles(quantiles, 0.5).item() == pytest.approx(1.5)
    assert cvar_of_quantiles(quantiles, 0.25).item() == pytest.approx(1.0)
    assert cvar_of_quantiles(quantiles, 1.0).item() == pytest.approx(2.5)
    # 0.3 of N = 4 atoms: the lowest in full (0.25), 0.05 of the second.
    assert cvar_of_quantiles(quantiles, 0.3).item() == pytest.approx((0.25 * 1 + 0.05 * 2) / 0.3)
    with pytest.raises(ValueError):
        cvar_of_quantiles(quantiles, 0.0)


def test_cvar_weights_the_boundary_quantile_by_its_fractional_share():
    """N = 5, q = 0.3: quantile 1 weighs 0.2, quantile 2 weighs 0.1, over 0.3 (the
    ceil(qN) rule averaged quantiles 1 and 2 equally: 40% of the mass)."""
    quantiles = torch.tensor([[10.0, 0.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    expected = torch.tensor([(0.2 * 0.0 + 0.1 * 4.0) / 0.3, (0.2 * 1.0 + 0.1 * 2.0) / 0.3])
    assert torch.allclose(cvar_of_quantiles(quantiles, 0.3), expected)
    # Any level between two atom edges moves the CVaR continuously.
    levels = [0.2, 0.25, 0.3, 0.35, 0.4]
    values = [cvar_of_quantiles(quantiles[1:], q).item() for q in levels]
    assert values == pytest.approx([1.0, 1.2, 4 / 3, 1.0 / 0.35 * (0.2 + 0.3), 1.5])


def test_training_time_cvar_columns_weight_the_fractional_quantile_too():
    """`with_cvar_columns` (the mtrec-cvar option q) derives the same CVaR."""
    rows = np.array([[10.0, 0.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 1, 1, 1]])
    table = pd.DataFrame({"split": ["train", "train", "test"]})
    for action in ("pos", "neg"):
        for k in range(5):
            table[f"reward_{action}_q{k + 1:02d}"] = rows[:, k] + (1.0 if action == "neg" else 0.0)
    derived = with_cvar_columns(table, 0.3)
    raw = {
        "pos": np.array([0.4 / 0.3, 0.4 / 0.3, 0.0]),
        "neg": np.array([0.4 / 0.3, 0.4 / 0.3, 0.0]) + 1.0,
    }
    pooled = np.concatenate([raw["pos"][:2], raw["neg"][:2]])
    for action, column in zip(("pos", "neg"), cvar_columns(0.3), strict=True):
        np.testing.assert_allclose(derived[column], (raw[action] - pooled.mean()) / pooled.std())


def test_reward_read_out_hand_computed():
    """Each action subtracts the value of its own next state: the observed one for
    the logged action, the expected one for the other, nothing at terminal rows."""
    quantiles = torch.tensor([[[0.0, 1.0], [1.0, 2.0]], [[0.0, 1.0], [1.0, 2.0]]])
    following = torch.zeros(2, 2, 2)  # V(s'_obs) = ln 2
    expected_next = torch.tensor([[3.0, 5.0], [3.0, 5.0]])  # E[V(h'_0, i')], E[V(h'_1, i')]
    terminal = torch.tensor([False, True])
    actions = torch.tensor([1, 0])
    out = reward_from_quantiles(
        quantiles,
        following,
        terminal,
        gamma=0.5,
        cvar_level=0.5,
        expected_next=expected_next,
        actions=actions,
    )
    observed = math.log(2)
    # Row 0 clicked: r(s,1) uses the observed next state, r(s,0) the expected V(h, i').
    assert torch.allclose(out["quantiles"][0, 1], quantiles[0, 1] - 0.5 * observed)
    assert torch.allclose(out["quantiles"][0, 0], quantiles[0, 0] - 0.5 * 3.0)
    assert torch.allclose(out["quantiles"][1], quantiles[1])  # terminal: V = 0 for both actions
    assert torch.allclose(out["mean"][0], torch.tensor([0.5 - 1.5, 1.5 - 0.5 * observed]))
    assert torch.allclose(out["cvar"][1], torch.tensor([0.0, 1.0]))
    assert torch.allclose(out["advantage"], torch.tensor([1.0, 1.0]))
    assert torch.allclose(out["next_value"], torch.tensor([observed, 0.0]))
    # r(s,1) - r(s,0) is no longer Q(s,1) - Q(s,0): it sees the next states.
    assert not torch.allclose(out["mean"][0, 1] - out["mean"][0, 0], out["advantage"][0])


def test_normalisation_uses_train_rows_and_one_scale_for_both_actions():
    rewards = pd.DataFrame(
        {
            "split": ["train", "train", "test"],
            **{f"reward_pos_{f}": [1.0, 3.0, 5.0] for f in ("mean", "cvar", "expected")},
            **{f"reward_neg_{f}": [0.0, 0.0, 0.0] for f in ("mean", "cvar", "expected")},
        }
    )
    stats = add_normalised(rewards)
    # train pool: 1, 3, 0, 0 -> mean 1, std sqrt(1.5)
    assert stats["mean"]["mean"] == pytest.approx(1.0)
    assert stats["mean"]["std"] == pytest.approx(math.sqrt(1.5))
    expected = (np.array([1.0, 3.0, 5.0]) - 1.0) / math.sqrt(1.5)
    assert np.allclose(rewards["reward_pos_mean_z"], expected)
    assert np.allclose(rewards["reward_neg_mean_z"], -1.0 / math.sqrt(1.5))


def test_reward_by_step_averages_positives_by_their_index():
    rewards = pd.DataFrame(
        {
            "user_idx": [1, 1, 1, 2, 2],
            "response": [1, 0, 1, 1, 1],
            "reward_pos_mean": [1.0, 9.0, 3.0, 5.0, 7.0],
            "reward_pos_expected": [0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    table = reward_by_step(rewards, min_count=1)
    assert table["step"].tolist() == [1, 2]
    assert table["mean_reward"].tolist() == [3.0, 5.0]  # (1 + 5) / 2, (3 + 7) / 2
    assert table["n"].tolist() == [2, 2]
