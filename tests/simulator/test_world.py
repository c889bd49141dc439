import numpy as np
import pytest

from mtrec.config import SimulatorConfig
from mtrec.simulator.world import (
    Draws,
    UserState,
    load_world,
    make_world,
    respond,
    save_world,
)


def test_world_is_a_function_of_the_seed():
    config = SimulatorConfig(n_users=20, n_items=30, seed=3)
    first, second = make_world(config), make_world(config)
    other = make_world(SimulatorConfig(n_users=20, n_items=30, seed=4))
    np.testing.assert_array_equal(first.item_quality, second.item_quality)
    np.testing.assert_array_equal(first.user_preferences, second.user_preferences)
    assert not np.allclose(first.item_quality, other.item_quality)


def test_clickbait_is_independent_of_quality():
    world = make_world(SimulatorConfig(n_users=2, n_items=20_000))
    correlation = np.corrcoef(world.item_quality, world.item_clickbait)[0, 1]
    # Sampling std of a correlation of independent draws is 1/sqrt(n) = 0.007.
    assert abs(correlation) < 0.03
    assert abs(np.corrcoef(world.item_noise_scale, world.item_quality)[0, 1]) < 0.03


def test_item_topics_are_mixtures_and_some_items_are_risky():
    config = SimulatorConfig(n_users=2, n_items=2000, risky_fraction=0.2)
    world = make_world(config)
    np.testing.assert_allclose(world.item_topics.sum(axis=1), 1.0)
    risky_share = np.mean(world.item_noise_scale == config.risky_noise_scale)
    assert 0.15 < risky_share < 0.25


def test_reward_ignores_clickbait_and_clicks_follow_it():
    config = SimulatorConfig(
        n_users=4000, n_items=2, preference_scale=0.0, noise_scale=0.0, risky_fraction=0.0
    )
    world = make_world(config)
    # Two items, equal quality and topics, different clickbait.
    world.item_quality[:] = 0.5
    world.item_topics[:] = world.item_topics[0]
    world.item_clickbait[:] = [-2.0, 2.0]
    users = np.arange(world.n_users)
    items = np.tile(np.array([[0, 1]]), (world.n_users, 1))
    draws = Draws.sample(np.random.default_rng(0), world.n_users, 2)
    response = respond(world, config, UserState.initial(world), users, items, draws)
    click_rate = response.click.mean(axis=0)
    assert click_rate[1] > click_rate[0] + 0.3
    np.testing.assert_allclose(response.expected_reward[:, 0], response.expected_reward[:, 1])


def test_disappointment_lowers_interest_in_the_topic():
    config = SimulatorConfig(
        n_users=1, n_items=5, noise_scale=0.0, risky_fraction=0.0, click_bias=20.0
    )
    world = make_world(config)
    world.item_quality[:] = -5.0  # every click disappoints
    state = UserState.initial(world)
    before = state.interest.copy()
    item = 2
    draws = Draws.sample(np.random.default_rng(1), 1, 1)
    response = respond(world, config, state, np.array([0]), np.array([[item]]), draws)
    assert response.click[0, 0] and response.reward[0, 0] < 0
    change = state.interest[0] - before[0]
    main_topic = world.item_topics[item].argmax()
    assert change[main_topic] < 0
    assert change[main_topic] == pytest.approx(change.min())


def test_ground_truth_round_trip(tmp_path):
    world = make_world(SimulatorConfig(n_users=5, n_items=7))
    loaded = load_world(save_world(world, tmp_path / "truth.npz"))
    np.testing.assert_array_equal(loaded.item_clickbait, world.item_clickbait)
    np.testing.assert_array_equal(loaded.user_susceptibility, world.user_susceptibility)
    assert list(loaded.item_ids) == list(world.item_ids)
