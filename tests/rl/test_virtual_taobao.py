"""VirtualTaobao: the Gymnasium adapter, a few hundred PPO steps, the mental reward read-out.

VirtualTaobao is not part of the repository; CI keeps `shared/` beside the repo
clone, so it is looked up at `<repo>/../shared/third_party/VirtualTaobao`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtrec.rl.virtual_taobao import (
    LAST_CLICKS,
    N_USER_FEATURES,
    PAGE_INDEX,
    PATH_VARIABLE,
    SOURCE_URL,
    VirtualTaobaoEnv,
    VirtualTaobaoNotFound,
    resolve_virtual_taobao_path,
)

REPO = Path(__file__).resolve().parents[2]
VIRTUAL_TAOBAO = REPO.parent / "shared" / "third_party" / "VirtualTaobao"
needs_virtual_taobao = pytest.mark.skipif(
    not (VIRTUAL_TAOBAO / "virtualTB").is_dir(),
    reason=f"VirtualTaobao not found at {VIRTUAL_TAOBAO} (clone {SOURCE_URL} there)",
)


def test_unset_path_says_where_to_get_virtual_taobao(monkeypatch):
    monkeypatch.delenv(PATH_VARIABLE, raising=False)
    with pytest.raises(VirtualTaobaoNotFound, match="not set") as caught:
        resolve_virtual_taobao_path(None)
    assert SOURCE_URL in str(caught.value)
    assert "virtual_taobao_path" in str(caught.value)


def test_folder_without_the_code_names_what_is_missing(tmp_path):
    (tmp_path / "virtualTB" / "envs").mkdir(parents=True)
    (tmp_path / "virtualTB" / "envs" / "virtualTB.py").write_text("")
    with pytest.raises(VirtualTaobaoNotFound, match="action_model.pt"):
        resolve_virtual_taobao_path(tmp_path)
    with pytest.raises(VirtualTaobaoNotFound, match="is not a folder"):
        resolve_virtual_taobao_path(tmp_path / "absent")


@pytest.fixture(scope="module")
def env():
    if not (VIRTUAL_TAOBAO / "virtualTB").is_dir():
        pytest.skip(f"VirtualTaobao not found at {VIRTUAL_TAOBAO} (clone {SOURCE_URL} there)")
    return VirtualTaobaoEnv(VIRTUAL_TAOBAO)


@needs_virtual_taobao
def test_gymnasium_env_checker_passes(env):
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (91,)
    assert env.action_space.shape == (27,)


def _session(env, seed, actions):
    observation, _ = env.reset(seed=seed)
    trace = [observation]
    for action in actions:
        observation, reward, terminated, _, info = env.step(action)
        trace.append((observation, reward, info["CTR"]))
        if terminated:
            break
    return trace


@needs_virtual_taobao
def test_seeded_sessions_repeat_and_leave_the_global_rng_alone(env):
    actions = np.random.default_rng(0).uniform(-1, 1, (150, 27)).astype(np.float32)
    before = torch.random.get_rng_state().clone()
    first = _session(env, 7, actions)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(123)  # the agent's RNG must not change the environment's draws
    second = _session(env, 7, actions)
    assert len(first) == len(second)
    np.testing.assert_array_equal(first[0], second[0])
    for (obs_a, r_a, ctr_a), (obs_b, r_b, ctr_b) in zip(first[1:], second[1:], strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert (r_a, ctr_a) == (r_b, ctr_b)
    other_users = [_session(env, seed, actions[:1])[0] for seed in range(8, 12)]
    assert any(not np.array_equal(first[0], o) for o in other_users)


@needs_virtual_taobao
def test_terminal_observation_is_the_finished_users(env):
    observation, _ = env.reset(seed=3)
    user = observation[:N_USER_FEATURES].copy()
    pages = clicks = 0
    while True:
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        pages += 1
        clicks += reward
        assert np.array_equal(observation[:N_USER_FEATURES], user)
        assert observation[PAGE_INDEX] == pages
        assert observation[LAST_CLICKS] == reward
        if terminated:
            break
    assert info["CTR"] == pytest.approx(clicks / pages / 10)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


@pytest.fixture(scope="module")
def readout(env):
    from mtrec.rl.mental_reward import UserRewardConfig, collect_behaviour_log, train_mental_reward

    log = collect_behaviour_log(env, n_sessions=40, seed=0)
    assert log.leave.sum() == 40 and log.session.max() == 39
    readout, summary = train_mental_reward(log, UserRewardConfig(max_epochs=2, seed=0))
    assert summary["transitions"] == len(log) and summary["epochs"] == 2
    return readout


@needs_virtual_taobao
def test_expected_next_readout(readout):
    """r(s, a) = Q(s, a) - gamma * mean over the page bank of V(u, t + 1, c(a), w');
    nothing follows leaving."""
    from mtrec.reward.inference import q_values, soft_value
    from mtrec.rl.mental_reward import N_CLICK_VALUES, state_features, user_action

    rng = np.random.default_rng(1)
    user = np.zeros(N_USER_FEATURES, dtype=np.float32)
    user[[0, 10, 20]] = 1
    page = rng.uniform(-1, 1, 27).astype(np.float32)
    state = state_features(user, [4], [2], page)
    with torch.no_grad():
        q = q_values(readout.network(torch.from_numpy(state)))[0]
        following = np.concatenate(
            [state_features(user, [5], [3], w) for w in readout.next_pages.numpy()]
        )
        expected_v = soft_value(readout.network(torch.from_numpy(following))).mean()
    stay, leave = user_action(3, 0), user_action(3, 1)
    assert leave == 3 + N_CLICK_VALUES
    raw = readout.raw(np.repeat(state, 2, axis=0), np.array([stay, leave]))
    assert raw[0] == pytest.approx(float(q[stay] - readout.gamma * expected_v), abs=1e-5)
    assert raw[1] == pytest.approx(float(q[leave]), abs=1e-5)
    z = readout(state, np.array([stay]))
    assert z[0] == pytest.approx((raw[0] - readout.mean) / readout.std, abs=1e-5)


@needs_virtual_taobao
def test_advantage_and_cvar_readouts(readout, tmp_path):
    """advantage: Q(s, a) - Q(s, no click with the same leave), 0 without clicks;
    cvar: the expected-next read-out with Q's mean replaced by its lower-tail CVaR;
    the kind survives save / load."""
    from mtrec.reward.inference import cvar_of_quantiles, q_values
    from mtrec.rl.mental_reward import MentalRewardReadout, state_features, user_action

    rng = np.random.default_rng(2)
    user = np.zeros(N_USER_FEATURES, dtype=np.float32)
    user[[1, 11, 21]] = 1
    states = np.concatenate(
        [state_features(user, [3], [1], rng.uniform(-1, 1, 27).astype(np.float32))] * 4
    )
    actions = np.array([user_action(0, 0), user_action(2, 0), user_action(0, 1), user_action(5, 1)])
    args = (readout.network, readout.next_pages.numpy(), readout.gamma)
    advantage = MentalRewardReadout(*args, kind="advantage")
    cvar = MentalRewardReadout(*args, kind="cvar", cvar_level=0.3)
    with torch.no_grad():
        quantiles = readout.network(torch.from_numpy(states))
        q = q_values(quantiles)[0]
    got = advantage.raw(states, actions)
    assert got[0] == 0.0 and got[2] == 0.0
    assert got[1] == pytest.approx(float(q[actions[1]] - q[user_action(0, 0)]), abs=1e-5)
    assert got[3] == pytest.approx(float(q[actions[3]] - q[user_action(0, 1)]), abs=1e-5)
    # Same next-state term as expected-next, so the difference is mean - CVaR of Z(s, a).
    gap = readout.raw(states, actions) - cvar.raw(states, actions)
    taken = quantiles[torch.arange(4), torch.from_numpy(actions)]
    np.testing.assert_allclose(
        gap, (taken.mean(-1) - cvar_of_quantiles(taken, 0.3)).numpy(), atol=1e-5
    )
    assert (gap >= -1e-6).all()
    loaded = MentalRewardReadout.load(cvar.save(tmp_path / "cvar"))
    assert loaded.kind == "cvar" and loaded.cvar_level == 0.3
    np.testing.assert_allclose(loaded.raw(states, actions), cvar.raw(states, actions), atol=1e-6)
    with pytest.raises(ValueError, match="read-out"):
        MentalRewardReadout(*args, kind="median")


@needs_virtual_taobao
def test_reward_wrapper_adds_kappa_times_the_mental_reward(env, readout):
    from mtrec.rl.mental_reward import MentalRewardWrapper, features_from_observation

    wrapped = MentalRewardWrapper(VirtualTaobaoEnv(VIRTUAL_TAOBAO), readout, kappa=0.2)
    observation, _ = wrapped.reset(seed=5)
    seen_leave = False
    for _ in range(300):
        page = wrapped.action_space.sample()
        following, reward, terminated, _, info = wrapped.step(page)
        action = info["clicks"] + 11 * int(terminated)
        mental = readout(features_from_observation(observation, page), np.array([action]))[0]
        assert info["r_mental"] == pytest.approx(float(mental), abs=1e-6)
        assert reward == pytest.approx(info["r_env"] + 0.2 * info["r_mental"])
        observation = following
        if terminated:
            seen_leave = True
            observation, _ = wrapped.reset()
    assert seen_leave


@needs_virtual_taobao
def test_a_few_hundred_ppo_steps_with_the_mental_reward(readout, mlflow_tracking_uri):
    import mlflow

    from mtrec.rl.agents import AgentConfig, train_agent

    torch.set_num_threads(1)
    config = AgentConfig(
        algorithm="ppo",
        reward="env+mental",
        steps=256,
        seed=0,
        ppo_n_steps=128,
        ppo_batch_size=64,
        eval_sessions=5,
    )
    result = train_agent(
        config,
        VIRTUAL_TAOBAO,
        readout=readout,
        mlflow_uri=mlflow_tracking_uri,
        experiment="test-virtual-taobao",
        progress=False,
    )
    assert result["env_steps"] == 256
    assert 0.0 <= result["ctr"] <= 1.0 and result["eval_sessions"] == 5
    assert result["seconds_per_100k_steps"] > 0
    runs = mlflow.search_runs(experiment_names=["test-virtual-taobao"])
    assert len(runs) == 1 and runs["metrics.ctr"].iloc[0] == pytest.approx(result["ctr"])
    with pytest.raises(ValueError, match="read-out"):
        train_agent(config, VIRTUAL_TAOBAO, readout=None, progress=False)


@needs_virtual_taobao
def test_ppo_mixture_behaviour_log(env):
    """The ppo-mixture behaviour log: at epsilon 1 it is the uniform policy's log
    for the same seed (every page from the sampler); at epsilon 0 every page is
    the trained agent's deterministic page, which the uniform log does not show."""
    from mtrec.rl.agents import BEHAVIOUR_SEED_OFFSET, collect_ppo_mixture_log
    from mtrec.rl.mental_reward import collect_behaviour_log

    torch.set_num_threads(1)
    uniform = collect_behaviour_log(env, n_sessions=5, seed=3)
    assert uniform.random_page.all() and uniform.policy == "uniform"

    def mixture(epsilon):
        return collect_ppo_mixture_log(
            env,
            VIRTUAL_TAOBAO,
            n_sessions=5,
            seed=3,
            agent_steps=256,
            epsilon=epsilon,
            ppo_n_steps=128,
        )

    all_random, agent = mixture(1.0)
    assert agent["agent_seed"] == BEHAVIOUR_SEED_OFFSET + 3 and agent["agent_env_steps"] == 256
    assert "epsilon=1.0" in all_random.policy and all_random.random_page.all()
    for name in ("user", "page_index", "last_clicks", "page", "clicks", "leave", "session"):
        np.testing.assert_array_equal(getattr(all_random, name), getattr(uniform, name))

    greedy, _ = mixture(0.0)
    assert not greedy.random_page.any() and greedy.n_sessions == 5
    assert greedy.leave.sum() == 5 and greedy.page.shape == (len(greedy), 27)
    assert len(greedy.actions()) == len(greedy) and greedy.features().shape[1] == 117
    # Same seed, same first user: only the pages (and what follows from them) differ.
    np.testing.assert_array_equal(greedy.user[0], uniform.user[0])
    assert not np.allclose(greedy.page[0], uniform.page[0])
    assert np.all(np.abs(greedy.page) <= 1.0)
    # The seeded agent and its deterministic pages make the log reproducible.
    again, _ = mixture(0.0)
    np.testing.assert_array_equal(again.page, greedy.page)
    np.testing.assert_array_equal(again.clicks, greedy.clicks)

    half, _ = mixture(0.5)
    assert 0 < half.random_page.sum() < len(half)
