from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec.reward.mdp import concat_splits
from mtrec.reward.proxies import (
    behavioural_proxies,
    session_outcomes,
    shrunk_item_mean,
    with_continuation,
)


def test_session_outcomes_hand_computed():
    # user 1: session A at t = 0, 10, 20 then a long pause, session B at 1000, 1010;
    # user 2: one session at 0, 10.
    users = np.array([1, 1, 1, 1, 1, 2, 2])
    times = np.array([0, 10, 20, 1000, 1010, 0, 10])
    clicks = np.array([1, 0, 1, 1, 0, 1, 1])
    out = session_outcomes(users, times, clicks, session_gap=100)
    assert out["continuation"].tolist() == [1, 1, 0, 1, 0, 1, 0]
    assert out["clicks_after"].tolist() == [1, 1, 0, 0, 0, 1, 0]
    assert out["return"].tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_proxies_read_item_statistics_from_train_and_futures_from_each_view():
    def frame(users, items, times, clicks, watch):
        return pd.DataFrame(
            {
                "user_idx": users,
                "item_idx": items,
                "timestamp": times,
                "response": clicks,
                "watch_ratio": watch,
            }
        )

    train = frame([1, 1, 2, 2], [1, 2, 1, 3], [0, 10, 0, 10], [1, 1, 1, 0], [0.5, 0.9, 0.1, np.nan])
    test = frame([1, 2], [3, 2], [20, 20], [1, 1], [1.2, 0.3])
    log = concat_splits({"train": train, "test": test})
    proxies = behavioural_proxies(log, n_items=3, session_gap=100, watch_ratio=log["watch_ratio"])
    # Log order: user 1 train (items 1, 2), user 1 test (3), user 2 train (1, 3), user 2 test (2).
    assert proxies["item_popularity"].tolist() == [2, 1, 0, 2, 0, 1]
    assert proxies["item_ctr"].tolist()[:2] == [1.0, 1.0]
    assert proxies["item_ctr"].iloc[2] == 0.0  # item 3: shown once in train, not clicked
    # Train rows end where the train log ends: user 1's item 2 click is terminal there.
    assert proxies["continuation"].tolist() == [1, 0, 0, 1, 0, 0]
    # Item 1 was clicked twice in train and both users went on: item continuation 1.
    assert proxies["item_continuation"].iloc[0] == 1.0
    assert proxies["item_continuation"].iloc[1] == 0.0  # item 2: its one train click ended the view
    np.testing.assert_allclose(proxies["watch_ratio"], log["watch_ratio"])


def test_item_continuation_reward_is_the_train_share_of_clicks_followed_in_session():
    from mtrec.reward.proxies import item_continuation_reward

    # User 1 clicks item 1 then goes on 10 s later; clicks item 2 and comes back a
    # day later (left). User 2 clicks item 1 and goes on. Valid rows: no statistics.
    table = pd.DataFrame(
        {
            "split": ["train"] * 5 + ["valid"],
            "user_idx": [1, 1, 1, 2, 2, 1],
            "item_idx": [1, 3, 2, 1, 3, 2],
            "timestamp": [0, 10, 20, 0, 5, 90_000],
            "response": [1, 0, 1, 1, 0, 1],
        }
    )
    # Continuation of the clicks: item 1 twice 1 (share 1), item 2 once 0 (the last
    # train row of user 1 has no next row: 0). Without shrinkage:
    reward = item_continuation_reward(table, session_gap=3600, prior_count=0.0)
    # Rows show items 1, 3, 2, 1, 3, 2; item 3 was never clicked: the global share 2/3.
    share = np.array([1.0, 2 / 3, 0.0, 1.0, 2 / 3, 0.0])
    train = share[:5]
    np.testing.assert_allclose(reward, (share - train.mean()) / train.std())
    assert reward[5] == reward[2]  # the valid row of item 2 gets item 2's train share


def test_item_reward_is_the_shrunk_mean_of_train_ratings():
    train = pd.DataFrame(
        {
            "item_idx": [1, 1, 2, 3, 3],
            "response": [1, 1, 1, 0, 1],
            "rating": [5.0, 3.0, 1.0, np.nan, np.nan],
        }
    )
    reward = shrunk_item_mean(train, "rating", n_items=4, prior_count=1.0)
    global_mean = 3.0  # (5 + 3 + 1) / 3: the skipped and unrated rows are not ratings
    assert reward[1] == pytest.approx((5 + 3 + global_mean) / 3)
    assert reward[2] == pytest.approx((1 + global_mean) / 2)
    assert reward[3] == pytest.approx(global_mean)  # no rating: the prior alone
    assert reward[4] == pytest.approx(global_mean)


def test_continuation_comes_from_behaviour_within_the_session_gap():
    # User 1: clicks at t=0 and t=10 (10 s apart: continued), then one row a day later.
    # Rows are out of order in the file; continuation follows event order.
    train = pd.DataFrame(
        {
            "user_idx": [1, 2, 1, 1],
            "item_idx": [3, 1, 1, 2],
            "timestamp": [86_400, 5, 0, 10],
            "response": [1, 1, 1, 1],
        }
    )
    out = with_continuation(train, session_gap=3600)
    assert out["continuation"].tolist() == [0.0, 0.0, 1.0, 0.0]
    reward = shrunk_item_mean(out, "continuation", n_items=3, prior_count=0.0)
    assert reward[1:].tolist() == [0.5, 0.0, 0.0]  # item 1: user 1 went on, user 2 did not
