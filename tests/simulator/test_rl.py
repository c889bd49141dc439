import numpy as np
import pytest
import torch

from mtrec.config import OnlineConfig, ReinforceConfig, SimulatorConfig
from mtrec.simulator.online import run_online
from mtrec.simulator.rl import (
    ReinforceRecommender,
    StepBatch,
    rl_experiment,
    train_reinforce,
    true_mental_reward,
)
from mtrec.simulator.world import make_world

SIM = SimulatorConfig(n_users=200, n_items=60, n_topics=4)
ONLINE = OnlineConfig(
    n_users=60,
    sessions_per_user=1,
    max_session_length=8,
    slate_size=3,
    warmup_exposures=10,
    n_bootstrap=200,
)
RL = ReinforceConfig(iterations=40, users_per_iteration=64, episode_length=10, learning_rate=0.05)


def test_true_mental_reward_is_zero_for_skips():
    batch = StepBatch(
        history=torch.zeros(3, 2, dtype=torch.long),
        items=torch.tensor([1, 2, 3]),
        responses=torch.tensor([1, 0, 1]),
        true_reward=torch.tensor([-0.5, float("nan"), 2.0]),
    )
    assert true_mental_reward(batch).tolist() == [-0.5, 0.0, 2.0]


def test_score_all_shape_and_padding_column():
    model = ReinforceRecommender(n_items=7, embedding_dim=4)
    scores = model.score_all(torch.tensor([[1, 2, 0], [0, 0, 0]]))
    assert scores.shape == (2, 8)
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()


def test_kappa_needs_a_mental_reward():
    with pytest.raises(ValueError, match="mental_reward"):
        train_reinforce(make_world(SIM), SIM, RL, ONLINE, kappa=0.2, mental_reward=None)


def test_reinforce_learns_to_get_clicks():
    torch.set_num_threads(1)
    world = make_world(SIM)
    model, returns = train_reinforce(world, SIM, RL, ONLINE, kappa=0.0, seed=0)
    # Mean episode return (clicks) rises over training.
    assert np.mean(returns[-10:]) > np.mean(returns[:10]) * 1.1
    untrained = ReinforceRecommender(world.n_items, RL.embedding_dim).eval()
    trained_ctr = run_online(model, world, SIM, ONLINE).per_user()["ctr"].mean()
    untrained_ctr = run_online(untrained, world, SIM, ONLINE).per_user()["ctr"].mean()
    assert trained_ctr > untrained_ctr


def test_rl_experiment_reports_both_variants_over_seeds(tmp_path):
    torch.set_num_threads(1)
    config = RL.model_copy(update={"iterations": 5})
    report = rl_experiment(SIM, config, ONLINE, seeds=[0, 1], out_path=tmp_path / "rl.json")
    assert (tmp_path / "rl.json").exists()
    assert report["variants"] == ["env", "env+true"]
    assert set(report["env"]) == set(report["env+true"])
    assert report["env"]["ctr"]["std"] >= 0
    assert len(report["per_seed"]) == 2
    assert set(report["per_seed"][0]["versus"]) == {"env+true"}


def test_learned_q_network_as_mental_reward():
    from mtrec.config import SASRecConfig
    from mtrec.reward.qnetwork import RewardQNetwork
    from mtrec.simulator.policies import ItemIndexMap
    from mtrec.simulator.rl import QNetworkMentalReward

    torch.manual_seed(0)
    world = make_world(SIM)
    # The network knows the first 50 of the 60 simulator items.
    backbone = SASRecConfig(dim=8, n_layers=1, n_heads=1, ffn_dim=16, max_history=4)
    network = RewardQNetwork(backbone, n_items=50, n_quantiles=3, head_hidden=8)
    reward = QNetworkMentalReward(
        network, ItemIndexMap.from_item_ids(world, list(world.item_ids[:50]))
    )
    batch = StepBatch(
        history=torch.tensor(
            [[1, 2, 3, 4, 5, 6, 0], [55, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]]
        ),
        items=torch.tensor([7, 8, 58]),
        responses=torch.tensor([1, 0, 1]),
        true_reward=torch.full((3,), float("nan")),
    )
    values = reward(batch)
    assert values.shape == (3,)
    assert values[0] != 0  # a click on a known item
    assert values[1] == 0 and values[2] == 0  # a skip; an item the network does not know

    model, _ = train_reinforce(
        world, SIM, RL.model_copy(update={"iterations": 2}), ONLINE, kappa=0.2, mental_reward=reward
    )
    assert isinstance(model, ReinforceRecommender)


def test_click_batch_holds_each_click_with_the_history_before_it():
    import pandas as pd

    from mtrec.simulator.rl import click_batch

    frame = pd.DataFrame(
        {
            "user_id": ["1", "1", "1", "2"],
            "item_id": ["5", "3", "4", "2"],
            "timestamp": [1, 2, 3, 1],
            "response": [1, 0, 1, 1],
            "true_reward": [0.5, float("nan"), -1.0, 2.0],
        }
    )
    batch = click_batch(frame, max_history=2)
    assert batch.history.tolist() == [[0, 0], [5, 0], [0, 0]]
    assert batch.items.tolist() == [5, 4, 2]
    assert batch.true_reward.tolist() == [0.5, -1.0, 2.0]
