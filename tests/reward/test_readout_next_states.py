"""The read-out against a Q-network evaluated by hand: each action's reward uses
its own next state (METHOD.md section 2), and each split is read with the MDP
the model trained / validated on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.config import GRU4RecConfig, RewardConfig
from mtrec.reward.inference import q_values, soft_value
from mtrec.reward.mdp import concat_splits
from mtrec.reward.qnetwork import RewardQNetwork
from mtrec.reward.readout import add_normalised, compute_rewards

GAMMA = 0.9
NEXT_ITEM = 9  # the display distribution puts all its mass here: E_{i'} is exact


def network() -> RewardQNetwork:
    torch.manual_seed(0)
    backbone = GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0)
    return RewardQNetwork(backbone, n_items=10, n_quantiles=3, head_hidden=8).eval()


def config() -> RewardConfig:
    return RewardConfig(
        backbone=GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0),
        n_quantiles=3,
        gamma=GAMMA,
        next_item_samples=3,
        device="cpu",
    )


def display() -> torch.Tensor:
    probabilities = torch.zeros(11, dtype=torch.float64)
    probabilities[NEXT_ITEM] = 1.0
    return probabilities


@torch.no_grad()
def quantiles(net: RewardQNetwork, history: list[int], item: int) -> torch.Tensor:
    """lambda(h, i) [2, N], straight from the network."""
    positives = torch.zeros(1, net.max_history, dtype=torch.long)
    positives[0, : len(history)] = torch.tensor(history, dtype=torch.long)
    state = torch.tensor([[len(history)]])
    return net(positives, torch.tensor([[item]]), state)[0, 0]


def value(net: RewardQNetwork, history: list[int], item: int) -> float:
    return float(soft_value(quantiles(net, history, item).unsqueeze(0)))


def q(net: RewardQNetwork, history: list[int], item: int) -> torch.Tensor:
    return q_values(quantiles(net, history, item).unsqueeze(0))[0]


def frame(users, items, responses) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": users,
            "item_idx": items,
            "timestamp": np.arange(len(users)),
            "response": responses,
        }
    )


def test_each_action_reads_its_own_next_state():
    """User 1: 5(+), 6(-), 7(+), 8(-, last). For the logged action the next state
    is the observed one; for the other action it is (h'_a, i') with i' drawn from
    the display distribution; the last exposure subtracts nothing."""
    net = network()
    log = concat_splits({"train": frame([1, 1, 1, 1], [5, 6, 7, 8], [1, 0, 1, 0])})
    rewards = compute_rewards(net, log, config(), display(), torch.device("cpu"), progress=False)
    r1, r0 = rewards["reward_pos_mean"].to_numpy(), rewards["reward_neg_mean"].to_numpy()

    # Row 0: a click on 5 with h = []. Logged next state ([5], 6); r(s,0) keeps h = [].
    q0 = q(net, [], 5)
    assert r1[0] == pytest.approx(float(q0[1]) - GAMMA * value(net, [5], 6), abs=1e-5)
    assert r0[0] == pytest.approx(float(q0[0]) - GAMMA * value(net, [], NEXT_ITEM), abs=1e-5)
    # Row 1: a skip of 6 with h = [5]. Logged next state ([5], 7); r(s,1) sees h + [6].
    q1 = q(net, [5], 6)
    assert r0[1] == pytest.approx(float(q1[0]) - GAMMA * value(net, [5], 7), abs=1e-5)
    assert r1[1] == pytest.approx(float(q1[1]) - GAMMA * value(net, [5, 6], NEXT_ITEM), abs=1e-5)
    # Row 3: terminal, V = 0 for both actions.
    q3 = q(net, [5, 7], 8)
    assert r1[3] == pytest.approx(float(q3[1]), abs=1e-5)
    assert r0[3] == pytest.approx(float(q3[0]), abs=1e-5)
    # So r(s,1) - r(s,0) differs from the advantage Q(s,1) - Q(s,0) where V differs.
    gap = rewards["reward_pos_mean"] - rewards["reward_neg_mean"]
    assert not np.allclose(gap[:3], rewards["advantage"][:3], atol=1e-4)
    np.testing.assert_allclose(gap[3], rewards["advantage"][3], atol=1e-5)


def three_split_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two users over train, valid and test (the concatenated log, and its train split)."""
    train = frame([1, 1, 1, 2, 2], [5, 6, 7, 3, 4], [1, 0, 1, 1, 1])
    valid = frame([1, 1, 2], [8, 2, 6], [0, 1, 1])
    test = frame([1, 2], [3, 7], [1, 0])
    return concat_splits({"train": train, "valid": valid, "test": test}), train


def test_train_rows_are_read_with_the_training_mdp():
    """The last train exposure is terminal in training, so its read-out must not
    subtract V of the first validation exposure; valid rows see the train history
    and end at the last valid exposure; the z statistics come from the train MDP."""
    net = network()
    log, train = three_split_log()
    device = torch.device("cpu")
    rewards = compute_rewards(net, log, config(), display(), device, progress=False)
    alone = compute_rewards(
        net, concat_splits({"train": train}), config(), display(), device, progress=False
    )
    in_train = (rewards["split"] == "train").to_numpy()
    columns = ["reward_pos_mean", "reward_neg_mean", "reward_pos_q01", "terminal", "next_value"]
    pd.testing.assert_frame_equal(
        rewards.loc[in_train, columns].reset_index(drop=True), alone[columns]
    )
    last_train = rewards.index[in_train & (rewards["split_row"] == 2).to_numpy()][0]
    assert rewards.loc[last_train, "terminal"]
    assert rewards.loc[last_train, "reward_pos_mean"] == pytest.approx(
        float(q(net, [5], 7)[1]), abs=1e-5
    )
    # The last valid exposure of user 1 (item 2, h = [5, 7]) is terminal in its view.
    last_valid = rewards.index[
        ((rewards["split"] == "valid") & (rewards["split_row"] == 1)).to_numpy()
    ][0]
    assert rewards.loc[last_valid, "terminal"]
    assert rewards.loc[last_valid, "reward_pos_mean"] == pytest.approx(
        float(q(net, [5, 7], 2)[1]), abs=1e-5
    )
    # Normalisation: train rows only, with their training-MDP rewards.
    statistics = add_normalised(rewards)
    expected = add_normalised(alone)
    assert statistics["mean"] == pytest.approx(expected["mean"])


def test_split_views_end_each_split_where_its_log_ends():
    from mtrec.reward.mdp import split_views

    log = concat_splits(
        {
            "train": frame([1, 1, 2], [5, 6, 3], [1, 0, 1]),
            "valid": frame([1, 2], [7, 4], [1, 1]),
            "test": frame([1], [8], [0]),
        }
    )
    views = {name: (rows, own) for name, rows, own in split_views(log)}
    assert list(views) == ["train", "valid", "test"]
    assert set(log["split"].iloc[views["train"][0]]) == {"train"}
    assert set(log["split"].iloc[views["valid"][0]]) == {"train", "valid"}
    assert len(views["test"][0]) == len(log)
    for name, (rows, own) in views.items():
        assert (log["split"].iloc[rows[own]] == name).all()


def test_views_built_once_read_the_same_rewards():
    """`train_reward`'s per-epoch report builds the validation view once
    (`readout_views`) and reads it every epoch: the same frame, bit for bit, as a
    read-out that builds it itself, call after call; a subset of splits lands on
    the right rows (the full read-out's, with a display distribution that makes
    the draws irrelevant)."""
    from mtrec.reward.readout import readout_views

    net = network()
    log, _ = three_split_log()
    device = torch.device("cpu")
    spread = torch.tensor([0.0] + [0.1] * 10, dtype=torch.float64)  # draws matter
    splits = ("valid", "test")
    views = readout_views(log, net.max_history, config().session_gap, device, splits)
    assert [view.name for view in views] == ["valid", "test"]
    fresh = compute_rewards(net, log, config(), spread, device, progress=False, splits=splits)
    for _ in range(2):
        reused = compute_rewards(
            net, log, config(), spread, device, progress=False, splits=splits, views=views
        )
        pd.testing.assert_frame_equal(reused, fresh, check_exact=True)
    assert fresh["split"].tolist() == ["valid", "valid", "test", "valid", "test"]

    full = compute_rewards(net, log, config(), display(), device, progress=False)
    subset = compute_rewards(net, log, config(), display(), device, progress=False, splits=splits)
    chosen = full["split"].isin(splits).to_numpy()
    pd.testing.assert_frame_equal(subset, full[chosen].reset_index(drop=True), check_exact=True)


def test_a_view_of_other_settings_is_refused():
    from mtrec.reward.readout import readout_views

    net = network()
    log = concat_splits({"train": frame([1, 1, 1], [5, 6, 7], [1, 0, 1])})
    device = torch.device("cpu")
    views = readout_views(log, net.max_history + 1, None, device)
    with pytest.raises(ValueError, match="max_history"):
        compute_rewards(net, log, config(), display(), device, progress=False, views=views)
