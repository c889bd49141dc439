"""Per-user sequence windows for one-pass training and evaluation.

A user's log is a time-ordered list of exposures (item, response). The
positives form the history sequence p_1..p_n; an exposure at time t sees the
state after the g positives before it (g = its global state). Training runs
every exposure of a window in one forward pass over the window's positives.

Windows (long users): positives are cut into windows of `max_history` (L)
starting at multiples of the stride S = max(1, L // 2). An exposure with
global state g goes to window k = max(0, ceil((g - L) / S)), the earliest
window in which its state is within reach; its local state is g - k*S, which
is g for g <= L and in (L - S, L] otherwise. So every exposure sees the last
min(g, L - S + 1 .. L) positives: at least half of the maximum history, and
exactly what `score_all` sees at inference (the last L positives) whenever
the local state is L. Each exposure lands in exactly one window; a window's
positives are cut after the largest state its exposures use, so no window
contains positives from after its last exposure.

Tensors are right-padded (item 0 / slot mask False), deterministic (windows in
(user_idx, window) order, exposures in log order) and DataLoader-friendly:
`WindowDataset` supports batched fetching, and `collate_windows` trims each
batch to its own widest row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


def window_stride(max_history: int) -> int:
    return max(1, max_history // 2)


@dataclass(frozen=True)
class WindowBatch:
    """W windows: positives [W, L]; exposure slots [W, M] (mask marks real ones).

    `row` is the exposure's position in the target frame (-1 on padding), so
    predictions can be written back; `extras` holds requested float columns
    (e.g. per-exposure rewards) aligned with the slots.
    """

    positives: torch.Tensor  # [W, L] long, right-padded
    items: torch.Tensor  # [W, M] long
    state_index: torch.Tensor  # [W, M] long in 0..L
    response: torch.Tensor  # [W, M] float 0/1
    mask: torch.Tensor  # [W, M] bool
    row: torch.Tensor  # [W, M] long
    user_idx: torch.Tensor  # [W] long
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [W, M] float

    def __len__(self) -> int:
        return int(self.positives.shape[0])

    def to(self, device: torch.device | str) -> WindowBatch:
        moved = {
            f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "extras"
        }
        extras = {name: value.to(device) for name, value in self.extras.items()}
        return WindowBatch(**moved, extras=extras)

    def select(self, index: torch.Tensor) -> WindowBatch:
        """Windows `index` (1-d long), trimmed to their own widest row."""
        mask = self.mask[index]
        width = max(1, int(mask.sum(1).max().item())) if len(index) else 1
        state_index = self.state_index[index][:, :width]
        used = torch.where(mask[:, :width], state_index, 0)
        length = max(1, int(used.max().item())) if len(index) else 1
        return WindowBatch(
            positives=self.positives[index][:, :length],
            items=self.items[index][:, :width],
            state_index=state_index,
            response=self.response[index][:, :width],
            mask=mask[:, :width],
            row=self.row[index][:, :width],
            user_idx=self.user_idx[index],
            extras={name: value[index][:, :width] for name, value in self.extras.items()},
        )


def _ordered_log(context: Sequence[pd.DataFrame], target: pd.DataFrame) -> pd.DataFrame:
    columns = ["user_idx", "item_idx", "response"]
    parts = [frame[columns].assign(_target_row=-1) for frame in context]
    parts.append(target[columns].assign(_target_row=np.arange(len(target))))
    log = pd.concat(parts, ignore_index=True)
    # Splits are temporal per user: context rows come before target rows.
    return log.sort_values("user_idx", kind="stable").reset_index(drop=True)


def build_windows(
    target: pd.DataFrame,
    max_history: int,
    context: Sequence[pd.DataFrame] = (),
    extra_columns: Sequence[str] = (),
) -> WindowBatch:
    """Windows over the exposures of `target` (processed rows, sorted by user
    then event order); `context` frames (earlier splits, e.g. train + valid
    for test) supply the positives those exposures see but are not exposures
    themselves. `extra_columns` of `target` become float [W, M] extras."""
    if max_history < 1:
        raise ValueError("max_history must be >= 1")
    stride = window_stride(max_history)
    log = _ordered_log(context, target)
    users = log["user_idx"].to_numpy(np.int64)
    items = log["item_idx"].to_numpy(np.int64)
    response = log["response"].to_numpy(np.int64)
    target_row = log["_target_row"].to_numpy(np.int64)

    # Global state: number of the user's positives before each row.
    positives_so_far = pd.Series(response).groupby(users).cumsum().to_numpy() - response
    is_target = target_row >= 0
    g = positives_so_far[is_target]
    window = np.where(g > max_history, -(-(g - max_history) // stride), 0)
    local_state = g - window * stride
    exposure_users = users[is_target]

    # One window per distinct (user, window) among target exposures, in order:
    # the pairs as one integer key (sorted as the pairs are), so that numpy
    # factorises it (a pandas MultiIndex factorises Python tuples: 0.3 s per
    # 500k rows).
    base = int(window.max(initial=0)) + 1
    lowest = int(exposure_users.min(initial=0))
    unique_keys, window_id = np.unique(
        (exposure_users - lowest) * base + window, return_inverse=True
    )
    window_id = window_id.reshape(-1)
    n_windows = len(unique_keys)
    slot = pd.Series(np.zeros(len(window_id))).groupby(window_id).cumcount().to_numpy()
    width = int(slot.max()) + 1 if len(slot) else 1

    out_items = np.zeros((n_windows, width), np.int64)
    out_state = np.zeros((n_windows, width), np.int64)
    out_response = np.zeros((n_windows, width), np.float32)
    out_mask = np.zeros((n_windows, width), bool)
    out_row = np.full((n_windows, width), -1, np.int64)
    out_items[window_id, slot] = items[is_target]
    out_state[window_id, slot] = local_state
    out_response[window_id, slot] = response[is_target]
    out_mask[window_id, slot] = True
    out_row[window_id, slot] = target_row[is_target]

    # Positives of each window: the user's positives [k*S, k*S + max local state).
    is_positive = response == 1
    positive_items = items[is_positive]
    positive_users = users[is_positive]
    user_start = {
        int(u): int(s) for u, s in zip(*np.unique(positive_users, return_index=True), strict=True)
    }
    needed = np.zeros(n_windows, np.int64)
    np.maximum.at(needed, window_id, local_state)
    window_users = (unique_keys // base + lowest).astype(np.int64)
    window_index = (unique_keys % base).astype(np.int64)
    out_positives = np.zeros((n_windows, max(1, int(needed.max(initial=0)))), np.int64)
    for w in range(n_windows):
        if needed[w] == 0:
            continue
        first = user_start[int(window_users[w])] + int(window_index[w]) * stride
        out_positives[w, : needed[w]] = positive_items[first : first + needed[w]]

    extras = {}
    for name in extra_columns:
        values = np.zeros((n_windows, width), np.float32)
        values[window_id, slot] = target[name].to_numpy(np.float32)[target_row[is_target]]
        extras[name] = torch.from_numpy(values)
    return WindowBatch(
        positives=torch.from_numpy(out_positives),
        items=torch.from_numpy(out_items),
        state_index=torch.from_numpy(out_state),
        response=torch.from_numpy(out_response),
        mask=torch.from_numpy(out_mask),
        row=torch.from_numpy(out_row),
        user_idx=torch.from_numpy(window_users),
        extras=extras,
    )


class WindowDataset(Dataset):
    """Map-style dataset over windows. With `collate_windows` a DataLoader
    yields trimmed `WindowBatch`es; batched fetching avoids per-item work."""

    def __init__(self, windows: WindowBatch) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: list[int]) -> list[int]:
        return list(indices)

    def batch(self, indices: Sequence[int]) -> WindowBatch:
        return self.windows.select(torch.as_tensor(indices, dtype=torch.long))


def window_loader(
    windows: WindowBatch, batch_size: int, shuffle: bool, seed: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over windows; with shuffle, the order is a function of `seed`
    alone (pass e.g. seed + epoch for a fresh, reproducible order per epoch)."""
    dataset = WindowDataset(windows)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=dataset.batch,
    )


@dataclass(frozen=True)
class RankingTargets:
    """One held-out positive per user and the history before it.

    `history` [U, max_history] holds the last positives (right-padded) the
    model conditions on; `seen` (CSR over all earlier positives, not only
    the last max_history) is what full ranking masks out.
    """

    user_idx: torch.Tensor  # [U]
    target: torch.Tensor  # [U]
    history: torch.Tensor  # [U, L]
    satisfied: np.ndarray  # [U] float: 1.0 / 0.0 / NaN (evaluation only)
    seen_items: np.ndarray  # concatenated earlier positives
    seen_offsets: np.ndarray  # [U + 1]

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def seen_pairs(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """(row within `rows`, item) of every earlier positive of those users."""
        start, stop = rows.start or 0, min(rows.stop, len(self))
        lo, hi = self.seen_offsets[start], self.seen_offsets[stop]
        counts = np.diff(self.seen_offsets[start : stop + 1])
        return np.repeat(np.arange(stop - start), counts), self.seen_items[lo:hi]

    def seen_mask(self, rows: slice, n_items: int) -> np.ndarray:
        """bool [len(rows), n_items + 1]: True on every earlier positive."""
        start, stop = rows.start or 0, min(rows.stop, len(self))
        mask = np.zeros((stop - start, n_items + 1), bool)
        mask[self.seen_pairs(rows)] = True
        return mask


def build_ranking_targets(targets: pd.DataFrame, max_history: int) -> RankingTargets:
    """From `ProcessedData.ranking_targets(name)` (user_idx, item_idx,
    satisfied, history arrays in time order)."""
    histories = [np.asarray(h, np.int64) for h in targets["history"]]
    padded = np.zeros((len(histories), max(1, max_history)), np.int64)
    for row, history in enumerate(histories):
        recent = history[-max_history:]
        padded[row, : len(recent)] = recent
    lengths = np.array([len(h) for h in histories], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    seen = np.concatenate(histories) if histories else np.zeros(0, np.int64)
    return RankingTargets(
        user_idx=torch.tensor(targets["user_idx"].to_numpy(np.int64)),
        target=torch.tensor(targets["item_idx"].to_numpy(np.int64)),
        history=torch.from_numpy(padded),
        satisfied=targets["satisfied"].to_numpy(np.float64),
        seen_items=seen.astype(np.int64),
        seen_offsets=offsets,
    )
