import numpy as np
import pytest
import torch

from mtrec.config import OnlineConfig, SimulatorConfig
from mtrec.simulator.logging_policy import generate_log
from mtrec.simulator.online import (
    compare,
    evaluate_policies,
    history_tensor,
    run_online,
    top_k,
    warm_up,
)
from mtrec.simulator.policies import (
    CTROracle,
    ItemIndexMap,
    PopularityPolicy,
    QualityOracle,
    RandomPolicy,
    SatisfactionOracle,
    TopicAffinityPolicy,
)
from mtrec.simulator.responsiveness import cohort_responsiveness
from mtrec.simulator.world import (
    UserState,
    click_probability,
    expected_reward,
    make_world,
    sigmoid,
)

SIM = SimulatorConfig(n_users=150, n_items=120, sessions_per_user=2, max_session_length=15)
ONLINE = OnlineConfig(
    sessions_per_user=2, max_session_length=8, slate_size=4, warmup_exposures=15, n_bootstrap=200
)


@pytest.fixture(scope="module")
def world():
    return make_world(SIM)


def test_oracle_beats_random_on_true_reward(world):
    identity = ItemIndexMap.identity(world.n_items)
    report = evaluate_policies(
        {
            "random": (RandomPolicy(world.n_items, seed=1), None),
            "oracle": (QualityOracle(world, identity), None),
        },
        world,
        SIM,
        ONLINE,
        baseline="random",
    )
    versus = report["versus_baseline"]["oracle"]
    assert versus["reward_per_shown"]["ci_low"] > 0
    assert versus["reward_per_click"]["difference"] > 0
    assert versus["negative_click_share"]["ci_high"] < 0
    # Satisfied users stay longer and watch more.
    assert versus["viewing_time"]["difference"] > 0
    assert versus["session_length"]["difference"] > 0
    summary = report["policies"]["oracle"]["reward_per_shown"]
    assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]


def test_same_policy_same_seed_is_identical_and_paired_difference_is_zero(world):
    first = run_online(RandomPolicy(world.n_items, seed=5), world, SIM, ONLINE)
    second = run_online(RandomPolicy(world.n_items, seed=5), world, SIM, ONLINE)
    assert first.sessions.equals(second.sessions)
    difference = compare(first, second, ONLINE)
    assert difference["ctr"]["difference"] == 0.0


def test_warm_up_is_shared_by_every_policy_and_follows_the_seed(world):
    first, second = warm_up(world, SIM, ONLINE), warm_up(world, SIM, ONLINE)
    assert first.histories == second.histories
    assert sum(len(h) for h in first.histories) > 0
    other = warm_up(world, SIM, ONLINE.model_copy(update={"seed": 12}))
    assert other.histories != first.histories


def test_popularity_clicks_more_but_satisfies_less_than_the_oracle(world):
    log = generate_log(SIM).frame
    identity = ItemIndexMap.identity(world.n_items)
    popularity = run_online(PopularityPolicy.from_log(log, identity, world), world, SIM, ONLINE)
    oracle = run_online(QualityOracle(world, identity), world, SIM, ONLINE)
    versus = compare(popularity, oracle, ONLINE)
    assert versus["reward_per_shown"]["ci_low"] > 0
    assert versus["ctr"]["n_users"] == SIM.n_users


def test_item_map_hides_items_the_policy_does_not_know(world):
    known_ids = list(world.item_ids[:60])  # the policy only knows half the catalogue
    item_map = ItemIndexMap.from_item_ids(world, known_ids)
    assert item_map.n_policy_items == 60
    assert (item_map.to_policy[60:] == 0).all()
    result = run_online(RandomPolicy(60, seed=0), world, SIM, ONLINE, item_map=item_map)
    assert result.sessions["shown"].sum() > 0
    np.testing.assert_array_equal(item_map.to_world()[1:], np.arange(60))


def test_history_tensor_padding_and_top_k():
    identity = ItemIndexMap.identity(10)
    histories = [[3, 1], [], [0, 1, 2, 4]]
    right = history_tensor(histories, np.array([0, 1, 2]), identity, max_history=3)
    assert right.tolist() == [[4, 2, 0], [0, 0, 0], [2, 3, 5]]
    left = history_tensor(histories, np.array([0]), identity, max_history=3, padding="left")
    assert left.tolist() == [[4, 2]]
    scores = np.array([[0.1, 0.9, 0.5, -np.inf]])
    assert top_k(scores, 2).tolist() == [[1, 2]]


def test_topic_aware_policy_is_responsive_and_popularity_is_not(world):
    identity = ItemIndexMap.identity(world.n_items)
    topical = cohort_responsiveness(
        TopicAffinityPolicy(world, identity), world, SIM, ONLINE, top_k=10
    )
    assert topical["responsiveness"] > 0.05
    assert topical["topic_share_after_positive"] > topical["topic_share_after_negative"]
    counts = torch.arange(world.n_items + 1, dtype=torch.float32).numpy()
    popular = cohort_responsiveness(PopularityPolicy(counts), world, SIM, ONLINE, top_k=10)
    assert popular["responsiveness"] == pytest.approx(0.0)


def test_state_oracles_score_with_the_worlds_own_formulas_at_the_current_interest(world):
    state = UserState.initial(world)
    state.interest[:5] += np.random.default_rng(0).standard_normal((5, state.interest.shape[1]))
    users = np.arange(5)
    items = np.tile(np.arange(world.n_items), (5, 1))
    ctr = CTROracle(world, SIM).world_scores(state.interest[users], users)
    np.testing.assert_allclose(
        sigmoid(ctr), click_probability(world, SIM, state, users, items), rtol=1e-10
    )
    satisfaction = SatisfactionOracle(world, SIM).world_scores(state.interest[users], users)
    np.testing.assert_allclose(
        satisfaction, expected_reward(world, SIM, state.interest[users], items), rtol=1e-10
    )


def test_ctr_oracle_clicks_more_and_satisfaction_oracle_satisfies_more(world):
    report = evaluate_policies(
        {
            "ctr": (CTROracle(world, SIM), None),
            "satisfaction": (SatisfactionOracle(world, SIM), None),
            "random": (RandomPolicy(world.n_items, seed=1), None),
        },
        world,
        SIM,
        ONLINE,
        baseline="ctr",
    )
    versus = report["versus_baseline"]["satisfaction"]
    # Clickbait drives clicks, not reward: the two oracles disagree, each wins its own metric.
    assert versus["ctr"]["ci_high"] < 0
    assert versus["reward_per_shown"]["ci_low"] > 0
    assert versus["negative_click_share"]["ci_high"] < 0
    assert report["versus_baseline"]["random"]["ctr"]["ci_high"] < 0


def test_cohorts_from_first_user_are_disjoint_and_reach_the_world_end(world):
    policy = RandomPolicy(world.n_items, seed=3)
    validation = run_online(policy, world, SIM, ONLINE.model_copy(update={"n_users": 60}))
    test = run_online(policy, world, SIM, ONLINE.model_copy(update={"first_user": 60}))
    assert sorted(validation.sessions["user"].unique()) == list(range(60))
    assert sorted(test.sessions["user"].unique()) == list(range(60, SIM.n_users))
    assert test.sessions["shown"].sum() > 0
    with pytest.raises(ValueError, match="first_user 150 is outside the world's 150 users"):
        warm_up(world, SIM, ONLINE.model_copy(update={"first_user": SIM.n_users}))
