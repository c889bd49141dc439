from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec.reward.mdp import concat_splits
from mtrec.reward.proxies import behavioural_proxies, session_outcomes


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
