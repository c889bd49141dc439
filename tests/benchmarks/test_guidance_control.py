"""The labelled guidance control (benchmarks/guidance_control.py): its reward
comes from train ratings only and replaces exactly the guidance's columns."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def control():
    return importlib.import_module("guidance_control")


def test_item_reward_is_the_shrunk_mean_of_train_ratings(control):
    train = pd.DataFrame(
        {
            "item_idx": [1, 1, 2, 3, 3],
            "response": [1, 1, 1, 0, 1],
            "rating": [5.0, 3.0, 1.0, np.nan, np.nan],
        }
    )
    reward = control.item_rating_reward(train, n_items=4, prior_count=1.0)
    global_mean = 3.0  # (5 + 3 + 1) / 3: the skipped and unrated rows are not ratings
    assert reward[1] == pytest.approx((5 + 3 + global_mean) / 3)
    assert reward[2] == pytest.approx((1 + global_mean) / 2)
    assert reward[3] == pytest.approx(global_mean)  # no rating: the prior alone
    assert reward[4] == pytest.approx(global_mean)


def test_control_table_replaces_only_the_guidance_columns_z_scored_on_train(control):
    read_out = pd.DataFrame(
        {
            "split": ["train", "train", "train", "valid"],
            "item_idx": [1, 2, 3, 1],
            "reward_pos_mean_z": [9.0, 9.0, 9.0, 9.0],
            "reward_neg_mean_z": [7.0, 7.0, 7.0, 7.0],
            "reward_pos_cvar_z": [1.0, 2.0, 3.0, 4.0],
        }
    )
    item_reward = np.array([0.0, 1.0, 2.0, 3.0])
    table = control.control_table(read_out, item_reward)
    train = table["split"] == "train"
    assert table.loc[train, "reward_pos_mean_z"].mean() == pytest.approx(0.0, abs=1e-6)
    assert table.loc[train, "reward_pos_mean_z"].std(ddof=0) == pytest.approx(1.0, abs=1e-6)
    # Valid rows get the train statistics' z of their item (item 1, the lowest).
    assert table["reward_pos_mean_z"].iloc[3] == pytest.approx(table["reward_pos_mean_z"].iloc[0])
    assert (table["reward_neg_mean_z"] == 0).all()
    pd.testing.assert_series_equal(table["reward_pos_cvar_z"], read_out["reward_pos_cvar_z"])
    assert read_out["reward_pos_mean_z"].eq(9.0).all()  # the input is not altered


def test_continuation_comes_from_behaviour_within_the_session_gap(control):
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
    out = control.with_continuation(train, session_gap=3600)
    assert out["continuation"].tolist() == [0.0, 0.0, 1.0, 0.0]
    reward = control.item_rating_reward(out, n_items=3, prior_count=0.0, signal="continuation")
    assert reward[1:].tolist() == [0.5, 0.0, 0.0]  # item 1: user 1 went on, user 2 did not
