"""The leave-aware MDP (reward.leave_action): the user's response is a click or a
skip and then staying or leaving, and the reward of a response is that of
going on after it, measured from leaving. Hand-computed read-outs, and a tiny
log in which users leave right after clicking one disappointing item."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from test_train_readout import toy_config as train_readout_config

from mtrec.config import RewardConfig
from mtrec.reward.inference import (
    expected_reward,
    response_q_values,
    response_reward,
    stay_advantage,
)
from mtrec.reward.qnetwork import load_qnetwork, read_qnetwork_description
from mtrec.reward.readout import read_out_rewards, reward_from_quantiles
from mtrec.reward.train import behaviour_nll, train_reward

# Two rows, four joint actions (skip-stay, click-stay, skip-leave, click-leave), N = 2.
QUANTILES = torch.tensor(
    [
        [[0.0, 2.0], [1.0, 3.0], [-1.0, 1.0], [4.0, 6.0]],
        [[0.0, 2.0], [1.0, 3.0], [-1.0, 1.0], [4.0, 6.0]],
    ]
)  # Q = [1, 2, 0, 5] per row


def test_a_response_is_worth_staying_after_it_measured_from_leaving():
    next_values = torch.tensor([[3.0, 5.0], [3.0, 5.0]])
    quantiles, mean = response_reward(QUANTILES, (0, 1), next_values, gamma=0.5)
    # skip: lambda(s, skip-stay) - 0.5 * 3 - Q(s, skip-leave) = [0, 2] - 1.5 - 0
    assert torch.allclose(quantiles[0, 0], torch.tensor([-1.5, 0.5]))
    # click: [1, 3] - 0.5 * 5 - Q(s, click-leave) 5
    assert torch.allclose(quantiles[0, 1], torch.tensor([-6.5, -4.5]))
    assert torch.allclose(mean[0], torch.tensor([-0.5, -5.5]))
    # Two actions: nothing to measure from.
    plain, _ = response_reward(QUANTILES[:, :2], (0, 1), next_values, gamma=0.5)
    assert torch.allclose(plain[0, 1], torch.tensor([-1.5, 0.5]))


def test_response_values_and_stay_advantage():
    q = response_q_values(QUANTILES)
    assert torch.allclose(
        q[0], torch.tensor([math.log(math.e + 1), math.log(math.e**2 + math.e**5)])
    )
    assert torch.allclose(stay_advantage(QUANTILES)[0], torch.tensor([1.0, -3.0]))
    with pytest.raises(ValueError, match="2 or 4 actions"):
        response_q_values(torch.zeros(1, 3, 2))


def test_the_logged_response_subtracts_the_observed_next_state_only_if_the_user_stayed():
    following = torch.zeros(2, 4, 2)  # V(s'_obs) = ln 4
    expected_next = torch.tensor([[3.0, 5.0], [3.0, 5.0]])
    out = reward_from_quantiles(
        QUANTILES,
        following,
        terminal=torch.tensor([False, True]),
        gamma=0.5,
        cvar_level=0.5,
        expected_next=expected_next,
        actions=torch.tensor([1, 3]),  # row 0 click-stay, row 1 click-leave
    )
    observed = math.log(4)
    assert torch.allclose(out["next_values"][0], torch.tensor([3.0, observed]))
    # A user who left: staying still has a next state, its expected value.
    assert torch.allclose(out["next_values"][1], expected_next[1])
    assert torch.allclose(out["mean"][0, 1], torch.tensor(2.0 - 0.5 * observed - 5.0))
    assert torch.allclose(out["mean"][1, 1], torch.tensor(2.0 - 2.5 - 5.0))
    assert torch.allclose(out["next_value"], torch.tensor([observed, 0.0]))
    assert torch.allclose(out["stay_advantage"][0], torch.tensor([1.0, -3.0]))


def test_behaviour_nll_skips_rows_of_weight_zero():
    actions = torch.tensor([1, 3])
    log_policy = torch.log_softmax(torch.tensor([1.0, 2.0, 0.0, 5.0]), dim=0)
    both = behaviour_nll(QUANTILES, actions)
    assert both.item() == pytest.approx(-(log_policy[1] + log_policy[3]).item() / 2)
    first = behaviour_nll(QUANTILES, actions, torch.tensor([1.0, 0.0]))
    assert first.item() == pytest.approx(-log_policy[1].item())


def toy_config(**changes) -> RewardConfig:
    """test_train_readout's toy reward config, leave-aware with the behaviour term."""
    leave_aware = dict(max_epochs=12, patience=12, leave_action=True, behaviour_weight=10.0)
    return train_readout_config(**{**leave_aware, **changes})


@pytest.fixture(scope="module")
def leaving_run(leaving_processed, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("leave_aware")
    processed = leaving_processed
    paths = train_reward(toy_config(), processed, folder / "model", progress=False)
    outputs = read_out_rewards(
        paths["model"], processed, folder / "rewards.parquet", folder / "reports", progress=False
    )
    return paths, outputs


def test_a_leave_aware_model_saves_four_actions_and_learns_them(leaving_run):
    paths, _ = leaving_run
    assert read_qnetwork_description(paths["model"])["n_actions"] == 4
    assert load_qnetwork(paths["model"]).n_actions == 4
    history = pd.read_csv(paths["history"])
    # Held-out joint actions: well below a uniform guess over four.
    assert history["valid_action_nll"].min() < 0.8 * math.log(4)
    summary = json.loads(paths["summary"].read_text())
    assert summary["best_epoch"] == int(history.loc[history["valid_action_nll"].idxmin(), "epoch"])


def test_clicks_users_leave_after_get_the_lower_reward(leaving_run):
    """Click rates say nothing here; only leaving does. The leave-aware read-outs,
    the observed-next-state one included, rank the disappointing item lower."""
    _, outputs = leaving_run
    rewards = pd.read_parquet(outputs["rewards"])
    clicks = rewards[rewards["response"] == 1]
    disappointing = clicks["item_idx"] == 1  # item id "1" sorts first
    assert disappointing.sum() > 50
    for column in ("reward_pos_mean", "reward_pos_expected", "stay_advantage_pos"):
        gap = clicks.loc[disappointing, column].mean() - clicks.loc[~disappointing, column].mean()
        assert gap < 0, column
    summary = json.loads(outputs["summary"].read_text())
    assert summary["recovery"]["test"]["spearman_true_reward__reward_pos_mean"] > 0.3


def test_the_service_reads_a_leave_aware_model_the_pipeline_way(leaving_run):
    """`expected_reward` on a four-action network: the click's reward from (s, a)
    alone equals the read-out table's `reward_pos_expected` when both draw the
    same next items."""
    paths, _ = leaving_run
    network = load_qnetwork(paths["model"])
    positives = torch.tensor([[2, 3, 0, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([2])
    items = torch.tensor([1])
    next_items = torch.tensor([[4, 5, 6, 7]])
    out = expected_reward(network, positives, lengths, items, next_items, 0.9, 0.3, actions=(1,))
    quantiles = network(positives, items.unsqueeze(1), lengths.unsqueeze(1))[:, 0]
    after_click = positives.clone()
    after_click[0, 2] = 1
    next_q = network(after_click.expand(4, -1), next_items.T, torch.full((4, 1), 3))[:, 0]
    next_value = torch.logsumexp(next_q.mean(-1), dim=-1).mean()
    q = quantiles.mean(-1)[0]
    assert out["mean"][0, 0].item() == pytest.approx(
        (q[1] - 0.9 * next_value - q[3]).item(), abs=1e-5
    )


def test_prepare_logs_censors_where_a_split_cuts_and_never_reads_test():
    from mtrec.reward.train import prepare_logs

    def frame(users, timestamps, responses):
        return pd.DataFrame(
            {
                "user_idx": users,
                "item_idx": [1] * len(users),
                "timestamp": timestamps,
                "response": responses,
            }
        )

    # User 1 has valid rows, user 2 none; user 2's train log ends for real.
    train = frame([1, 1, 2, 2], [0, 60, 0, 60], [1, 0, 1, 1])
    valid = frame([1, 1], [120, 180], [0, 1])
    logs = prepare_logs(train, valid, max_history=3, leave_action=True)
    assert logs.train.censored.tolist() == [False, True, False, False]
    assert logs.train.actions.tolist() == [1, 0, 1, 3]  # user 2 left after a click
    # Every user's last row of train + valid is censored (nothing read after valid).
    assert logs.train_and_valid.censored.tolist() == [False, False, False, True, False, True]
    two_action = prepare_logs(train, valid, max_history=3)
    assert (
        not two_action.train.censored.any()
        and two_action.train.loss_weights(torch.arange(4)) is None
    )


def test_the_behaviour_term_adds_the_weighted_action_likelihood_to_the_objective():
    from mtrec.models import parse_model_config
    from mtrec.reward.mdp import build_mdp
    from mtrec.reward.qnetwork import RewardQNetwork
    from mtrec.reward.train import quantiles_for_rows, transition_loss

    log = pd.DataFrame(
        {
            "user_idx": [1, 1, 1, 2, 2],
            "item_idx": [1, 2, 3, 1, 2],
            "timestamp": [0, 60, 99_999, 0, 60],
            "response": [1, 0, 1, 0, 1],
        }
    )
    mdp = build_mdp(log, 3, leave_action=True, continues=[False] * 3 + [True] * 2)
    torch.manual_seed(0)
    backbone = parse_model_config({"kind": "gru4rec", "max_history": 3, "dim": 8})
    network = RewardQNetwork(backbone, n_items=3, n_quantiles=2, head_hidden=8, n_actions=4).eval()
    rows = torch.arange(5)
    plain = transition_loss(network, mdp, rows, toy_config(behaviour_weight=0.0))
    weighted = transition_loss(network, mdp, rows, toy_config(behaviour_weight=2.0))
    expected = behaviour_nll(
        quantiles_for_rows(network, mdp, rows), mdp.actions, mdp.loss_weights(rows)
    )
    assert plain.behaviour is None and weighted.behaviour.item() == pytest.approx(expected.item())
    assert weighted.total.item() == pytest.approx(plain.total.item() + 2.0 * expected.item())
    assert (weighted.td.item(), weighted.value.item()) == pytest.approx(
        (plain.td.item(), plain.value.item())
    )
