from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.reward.readout import (
    add_normalised,
    cvar_of_quantiles,
    reward_by_step,
    reward_from_quantiles,
)


def test_cvar_is_the_mean_of_the_lowest_quantiles():
    quantiles = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    assert cvar_of_quantiles(quantiles, 0.5).item() == pytest.approx(1.5)
    assert cvar_of_quantiles(quantiles, 0.3).item() == pytest.approx(1.5)  # ceil(1.2) = 2
    assert cvar_of_quantiles(quantiles, 0.25).item() == pytest.approx(1.0)
    assert cvar_of_quantiles(quantiles, 1.0).item() == pytest.approx(2.5)
    with pytest.raises(ValueError):
        cvar_of_quantiles(quantiles, 0.0)


def test_reward_read_out_hand_computed():
    quantiles = torch.tensor([[[0.0, 1.0], [1.0, 2.0]], [[0.0, 1.0], [1.0, 2.0]]])
    following = torch.zeros(2, 2, 2)  # V(s') = ln 2
    terminal = torch.tensor([False, True])
    out = reward_from_quantiles(quantiles, following, terminal, gamma=0.5, cvar_level=0.5)
    shift = 0.5 * math.log(2)
    assert torch.allclose(out["quantiles"][0], quantiles[0] - shift)
    assert torch.allclose(out["quantiles"][1], quantiles[1])  # terminal: V(s') = 0
    assert torch.allclose(out["mean"][0], torch.tensor([0.5 - shift, 1.5 - shift]))
    assert torch.allclose(out["cvar"][1], torch.tensor([0.0, 1.0]))
    assert torch.allclose(out["advantage"], torch.tensor([1.0, 1.0]))


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
