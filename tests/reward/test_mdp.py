from __future__ import annotations

import pandas as pd
import pytest
import torch

from mtrec.reward.mdp import build_mdp, concat_splits

# user 1: items 5(+), 6(-), 7(+), 8(+), 9(-); user 2: 3(-), 4(+)
LOG = pd.DataFrame(
    {
        "user_idx": [1, 1, 1, 1, 1, 2, 2],
        "item_idx": [5, 6, 7, 8, 9, 3, 4],
        "timestamp": [1, 2, 3, 4, 5, 1, 2],
        "response": [1, 0, 1, 1, 0, 0, 1],
    }
)


def test_last_exposure_of_each_user_is_terminal():
    mdp = build_mdp(LOG, max_history=3)
    assert mdp.is_terminal.tolist() == [False, False, False, False, True, False, True]


def test_histories_are_positives_before_t_right_padded():
    mdp = build_mdp(LOG, max_history=3)
    positives, lengths = mdp.histories(torch.arange(7))
    assert lengths.tolist() == [0, 1, 1, 2, 3, 0, 0]
    assert positives.tolist() == [
        [0, 0, 0],
        [5, 0, 0],
        [5, 0, 0],
        [5, 7, 0],
        [5, 7, 8],
        [0, 0, 0],  # user 2 never sees user 1's positives
        [0, 0, 0],
    ]


def test_histories_keep_the_last_max_history_positives():
    mdp = build_mdp(LOG, max_history=2)
    positives, lengths = mdp.histories(torch.tensor([4]))
    assert positives.tolist() == [[7, 8]] and lengths.tolist() == [2]


def test_history_after_a_positive_response():
    mdp = build_mdp(LOG, max_history=2)
    positives, lengths = mdp.histories_after_positive(torch.tensor([0, 3, 4]))
    # row 0: [] + [5]; row 3: [5, 7] + [8] -> last two; row 4: [7, 8] + [9] -> [8, 9]
    assert positives.tolist() == [[5, 0], [7, 8], [8, 9]]
    assert lengths.tolist() == [1, 2, 2]


def test_state_keys_group_equal_histories_only():
    mdp = build_mdp(LOG, max_history=3)
    keys = mdp.state_keys(torch.arange(7)).tolist()
    assert keys[1] == keys[2]  # same history [5]
    assert keys[0] == keys[5] == keys[6]  # empty histories are all equal
    assert len({keys[0], keys[1], keys[3], keys[4]}) == 4


def test_unsorted_log_is_rejected():
    with pytest.raises(ValueError, match="sorted"):
        build_mdp(LOG.iloc[::-1], max_history=3)


def test_concat_splits_orders_each_user_train_valid_test():
    train = LOG[LOG["timestamp"] <= 2].reset_index(drop=True)
    valid = LOG[LOG["timestamp"].isin([3, 4])].reset_index(drop=True)
    test = LOG[LOG["timestamp"] == 5].reset_index(drop=True)
    joined = concat_splits({"test": test, "train": train, "valid": valid})
    assert joined["user_idx"].tolist() == [1, 1, 1, 1, 1, 2, 2]
    assert joined["item_idx"].tolist() == [5, 6, 7, 8, 9, 3, 4]
    assert joined["split"].tolist() == [
        "train",
        "train",
        "valid",
        "valid",
        "test",
        "train",
        "train",
    ]
    assert joined["split_row"].tolist() == [0, 1, 0, 1, 0, 2, 3]


def test_a_long_pause_ends_an_episode_when_session_gap_is_set():
    log = LOG.assign(timestamp=[1, 2, 500, 501, 502, 1, 2])
    assert build_mdp(log, 3).is_terminal.tolist() == [False] * 4 + [True, False, True]
    with_gap = build_mdp(log, 3, session_gap=100)
    assert with_gap.is_terminal.tolist() == [False, True, False, False, True, False, True]
    # The history carries over the pause.
    assert with_gap.histories(torch.tensor([2]))[1].tolist() == [1]


def test_leave_aware_actions_join_the_response_and_leaving():
    # user 1 pauses after row 1 (a session ends: leave) and ends the log at row 4.
    log = LOG.assign(timestamp=[1, 2, 500, 501, 502, 1, 2])
    mdp = build_mdp(log, 3, session_gap=100, leave_action=True)
    # response + 2 * leave: row 1 skip-leave, row 4 skip-leave, row 6 click-leave.
    assert mdp.actions.tolist() == [1, 2, 1, 1, 2, 0, 3]
    assert mdp.responses.tolist() == LOG["response"].tolist()
    assert mdp.n_actions == 4
    assert mdp.loss_weights(torch.arange(7)).tolist() == [1.0] * 7
    # The two-action MDP keeps the responses as its actions and weighs every row.
    plain = build_mdp(log, 3, session_gap=100)
    assert plain.actions.tolist() == LOG["response"].tolist() and plain.n_actions == 2
    assert plain.loss_weights(torch.arange(7)) is None


def test_leave_aware_mdp_ends_sessions_at_the_default_gap_when_none_is_set():
    log = LOG.assign(timestamp=[1, 2, 2 + 3601, 2 + 3602, 2 + 3603, 1, 2])
    mdp = build_mdp(log, 3, session_gap=None, leave_action=True)
    assert mdp.is_terminal.tolist() == [False, True, False, False, True, False, True]


def test_a_user_whose_log_goes_on_later_is_censored_not_leaving():
    continues = [True] * 5 + [False] * 2  # user 1 has rows in a later split
    mdp = build_mdp(LOG, 3, leave_action=True, continues=continues)
    assert mdp.censored.tolist() == [False] * 4 + [True, False, False]
    assert mdp.is_terminal.tolist() == [False] * 4 + [True, False, True]
    # Row 4 is no leave (its action is the response alone) and does not count in losses.
    assert mdp.actions.tolist() == [1, 0, 1, 1, 0, 0, 3]
    assert mdp.loss_weights(torch.arange(7)).tolist() == [1.0] * 4 + [0.0, 1.0, 1.0]


def test_continues_after_view_marks_users_with_later_splits():
    from mtrec.reward.mdp import continues_after_view, split_views

    train = LOG[LOG["timestamp"] <= 3].reset_index(drop=True)  # user 2 ends here
    valid = LOG[LOG["timestamp"] == 4].reset_index(drop=True)
    test = LOG[LOG["timestamp"] == 5].reset_index(drop=True)
    joined = concat_splits({"train": train, "valid": valid, "test": test})
    views = {name: rows for name, rows, _ in split_views(joined)}
    train_view = joined.iloc[views["train"]]
    flags = continues_after_view(joined, views["train"])
    assert dict(zip(train_view["user_idx"], flags, strict=True)) == {1: True, 2: False}
    assert not continues_after_view(joined, views["test"]).any()
