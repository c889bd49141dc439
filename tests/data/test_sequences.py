import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.data.processed import load_processed
from mtrec.data.sequences import (
    build_ranking_targets,
    build_windows,
    window_loader,
    window_stride,
)


def _log(n_positives_per_user: dict[int, int]) -> pd.DataFrame:
    """Each positive k of user u is item 100*u + k, preceded by negative item 1."""
    rows = []
    for user, count in n_positives_per_user.items():
        for k in range(count):
            rows.append((user, 1, 0))
            rows.append((user, 100 * user + k, 1))
        rows.append((user, 2, 0))  # a trailing negative sees all positives
    frame = pd.DataFrame(rows, columns=["user_idx", "item_idx", "response"])
    frame["reward"] = np.arange(len(frame), dtype=float)
    return frame


def _true_histories(frame: pd.DataFrame) -> list[list[int]]:
    histories, seen = [], {}
    for user, item, response in frame[["user_idx", "item_idx", "response"]].itertuples(index=False):
        histories.append(list(seen.get(user, [])))
        if response == 1:
            seen.setdefault(user, []).append(item)
    return histories


@pytest.mark.parametrize("max_history", [1, 2, 4, 5])
def test_every_exposure_once_with_a_recent_suffix_of_its_history(max_history):
    frame = _log({1: 0, 2: 3, 3: 11})
    windows = build_windows(frame, max_history, extra_columns=["reward"])
    truth = _true_histories(frame)
    rows = windows.row[windows.mask]
    assert sorted(rows.tolist()) == list(range(len(frame)))
    minimum_context = max_history - window_stride(max_history) + 1
    for w, slot in zip(*torch.nonzero(windows.mask, as_tuple=True), strict=True):
        row = int(windows.row[w, slot])
        state = int(windows.state_index[w, slot])
        seen = windows.positives[w, :state].tolist()
        history = truth[row]
        assert state <= max_history
        assert seen == history[len(history) - state :]  # the most recent `state` positives
        assert state >= min(len(history), minimum_context)
        assert int(windows.items[w, slot]) == frame["item_idx"][row]
        assert float(windows.response[w, slot]) == frame["response"][row]
        assert float(windows.extras["reward"][w, slot]) == frame["reward"][row]
        assert int(windows.user_idx[w]) == frame["user_idx"][row]


def test_windows_come_in_log_order_for_any_user_ids():
    """Windows are numbered by (user, window index), i.e. in log order, whatever
    the user ids (0, gaps, large): each window's rows follow the previous one's."""
    frame = _log({0: 4, 7: 9, 1000: 3, 100_000: 6})
    windows = build_windows(frame, 2, extra_columns=["reward"])
    rows = [windows.row[w][windows.mask[w]].tolist() for w in range(len(windows))]
    assert sorted(r for window in rows for r in window) == list(range(len(frame)))
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert max(earlier) < min(later)
    users = frame["user_idx"].to_numpy()
    assert windows.user_idx.tolist() == [int(users[window[0]]) for window in rows]
    # A user with p positives has states 0..p: window k >= 1 holds states up to
    # L + k S, so 1 + ceil((p - L) / S) windows when p > L.
    stride = window_stride(2)
    assert len(windows) == sum(1 + max(0, -(-(p - 2) // stride)) for p in (4, 9, 3, 6))


def test_window_positives_stop_at_the_last_state_used():
    frame = _log({3: 11})
    windows = build_windows(frame, 4)
    for w in range(len(windows)):
        used = int(windows.state_index[w][windows.mask[w]].max())
        assert int((windows.positives[w] > 0).sum()) == used
    # 11 positives, L = 4, S = 2: states 0..11 -> windows k = 0..4.
    assert len(windows) == 5


def test_context_supplies_history_but_not_exposures(toy_processed_dir):
    data = load_processed(toy_processed_dir)
    windows = build_windows(data.test, 50, context=[data.train, data.valid])
    assert int(windows.mask.sum()) == len(data.test)
    targets = data.ranking_targets("test")
    test_positives = data.test[data.test.response == 1]
    last_positive = dict(zip(test_positives.user_idx, test_positives.item_idx, strict=True))
    for w in range(len(windows)):
        user = int(windows.user_idx[w])
        slots = windows.mask[w] & (windows.items[w] == last_positive[user])
        state = int(windows.state_index[w][slots][0])
        history = targets.loc[targets.user_idx == user, "history"].item()
        assert windows.positives[w, :state].tolist() == history.tolist()


def test_loader_is_deterministic_and_trims_batches(toy_processed_dir):
    data = load_processed(toy_processed_dir)
    windows = build_windows(data.train, 3)

    def order(seed):
        return [b.user_idx.tolist() for b in window_loader(windows, 8, shuffle=True, seed=seed)]

    assert order(5) == order(5)
    assert order(5) != order(6)
    for batch in window_loader(windows, 8, shuffle=False):
        assert batch.mask[:, -1].any()  # no all-padding trailing slot column
        assert int(batch.state_index[batch.mask].max()) <= batch.positives.shape[1]
    total = sum(int(b.mask.sum()) for b in window_loader(windows, 8, shuffle=True, seed=1))
    assert total == len(data.train)


def test_ranking_targets_mask_all_earlier_positives(toy_processed_dir):
    data = load_processed(toy_processed_dir)
    frame = data.ranking_targets("test")
    targets = build_ranking_targets(frame, max_history=3)
    assert targets.history.shape == (len(frame), 3)
    first = frame["history"][0]
    assert targets.history[0].tolist() == first[-3:].tolist()
    mask = targets.seen_mask(slice(0, 2), data.n_items)
    assert mask.shape == (2, data.n_items + 1)
    assert set(np.flatnonzero(mask[0])) == set(first.tolist())
    assert not mask[:, 0].any()
