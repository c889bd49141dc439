import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mtrec.config import SimulatorConfig
from mtrec.simulator.logging_policy import generate_log

SMALL = SimulatorConfig(n_users=200, n_items=100, sessions_per_user=3, max_session_length=15)


def test_log_is_deterministic_given_the_seed():
    first = generate_log(SMALL).frame
    second = generate_log(SMALL).frame
    pd.testing.assert_frame_equal(first, second)
    third = generate_log(SMALL.model_copy(update={"seed": 99})).frame
    assert not first.equals(third)


def test_log_columns_and_signals():
    frame = generate_log(SMALL).frame
    assert list(frame.columns) == [
        "user_id",
        "item_id",
        "timestamp",
        "response",
        "watch_ratio",
        "true_reward",
    ]
    clicks = frame["response"] == 1
    assert frame.loc[clicks, "true_reward"].notna().all()
    assert frame.loc[~clicks, "true_reward"].isna().all()
    assert (frame.loc[clicks, "watch_ratio"] >= 0).all()
    assert 0.1 < clicks.mean() < 0.9
    # Users never click the same item twice.
    assert not frame[clicks].duplicated(["user_id", "item_id"]).any()
    # Events are in time order per user.
    assert (frame.groupby("user_id")["timestamp"].diff().dropna() > 0).all()


def test_watch_ratio_tracks_the_true_reward():
    frame = generate_log(SMALL).frame
    clicks = frame[frame["response"] == 1]
    assert spearmanr(clicks["watch_ratio"], clicks["true_reward"]).statistic > 0.8


def test_disappointed_users_leave_earlier():
    config = SimulatorConfig(n_users=600, n_items=200, sessions_per_user=2, max_session_length=30)
    frame = generate_log(config).frame
    frame["session"] = (frame["timestamp"] - 1_600_000_000) // 86_400
    sessions = frame.groupby(["user_id", "session"])
    first_click_reward = sessions.apply(
        lambda s: (
            s.loc[s["response"] == 1, "true_reward"].iloc[0] if s["response"].any() else np.nan
        ),
        include_groups=False,
    )

    # Exposures after the first click, by whether that click disappointed.
    def after_first_click(s: pd.DataFrame) -> float:
        positions = np.flatnonzero(s["response"].to_numpy() == 1)
        return len(s) - positions[0] - 1 if len(positions) else np.nan

    remaining = sessions.apply(after_first_click, include_groups=False)
    table = pd.DataFrame({"reward": first_click_reward, "remaining": remaining}).dropna()
    disappointed = table.loc[table["reward"] < -0.5, "remaining"].mean()
    satisfied = table.loc[table["reward"] > 0.5, "remaining"].mean()
    assert disappointed < 0.7 * satisfied


def test_item_click_rate_does_not_reveal_the_reward():
    frame = generate_log(SimulatorConfig(n_users=600, n_items=200)).frame
    per_item = frame.groupby("item_id").agg(
        ctr=("response", "mean"), reward=("true_reward", "mean")
    )
    per_item = per_item.dropna()
    # Clickbait drives clicks but not satisfaction (METHOD.md section 6).
    assert spearmanr(per_item["ctr"], per_item["reward"]).statistic < 0.25


def test_cached_preference_distribution_matches_the_on_the_fly_one(monkeypatch):
    import mtrec.simulator.logging_policy as logging_policy

    cached = generate_log(SMALL).frame
    monkeypatch.setattr(logging_policy, "CDF_CACHE_LIMIT", 0)
    on_the_fly = generate_log(SMALL).frame
    assert len(cached) == len(on_the_fly)
    # float32 cache vs float64: at most a rare draw at a CDF boundary differs.
    assert (cached["item_id"] == on_the_fly["item_id"]).mean() > 0.99


def test_risky_items_have_a_wider_reward_distribution():
    log = generate_log(SMALL)
    clicks = log.frame[log.frame["response"] == 1]
    item_index = clicks["item_id"].astype(int).to_numpy() - 1
    # Residual around each click's item quality: noise (plus the spread of fit).
    risky = log.world.item_noise_scale[item_index] == SMALL.risky_noise_scale
    spread_risky = clicks.loc[risky, "true_reward"].std()
    spread_safe = clicks.loc[~risky, "true_reward"].std()
    assert risky.sum() > 50
    assert spread_risky > 1.2 * spread_safe


def test_a_world_larger_than_a_block_is_simulated_block_by_block(monkeypatch):
    import mtrec.simulator.logging_policy as logging_policy

    one_block = generate_log(SMALL).frame
    monkeypatch.setattr(logging_policy, "BLOCK_CELLS", 40 * SMALL.n_items)  # blocks of 40 users
    blocks = generate_log(SMALL).frame
    assert blocks.equals(generate_log(SMALL).frame)  # seeded, block by block
    # Every user is simulated, in the log's order, under the same world and policy:
    # the same marginals, from other random numbers.
    assert set(blocks["user_id"]) == set(one_block["user_id"])
    assert (blocks.groupby("user_id")["timestamp"].diff().dropna() > 0).all()
    assert not blocks["item_id"].equals(one_block["item_id"])
    assert abs(blocks["response"].mean() - one_block["response"].mean()) < 0.03
    # A user never gets an item shown again after clicking it (the block's click matrix).
    clicks = blocks[blocks["response"] == 1]
    for _, user in clicks.groupby("user_id"):
        first_click = user.groupby("item_id")["timestamp"].min()
        shown = blocks[blocks["user_id"] == user["user_id"].iloc[0]]
        later = shown.merge(first_click.rename("clicked_at"), on="item_id")
        assert (later["timestamp"] <= later["clicked_at"]).all()
