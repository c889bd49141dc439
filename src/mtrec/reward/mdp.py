"""The user-centric MDP of METHOD.md section 1, in flat tensor form.

The user is the agent. At exposure t the state is s_t = (h_t, i_t): the user's
last `max_history` positives before t and the item now shown; the action is the
logged response a_t; the next state is the user's next exposure, and a user's
last exposure is terminal (V(s') = 0).

Rows are kept flat and in log order (users one after another, each in event
order), so the next state of row e is row e + 1 unless e is terminal. Training
takes runs of consecutive rows: one forward pass over the rows and their next
rows, each distinct history through the backbone once (consecutive rows mostly
share it), with no padding and no python loop over events. Histories are
gathered on the fly from one flat array of positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mtrec.reward.inference import append_item

SPLIT_ORDER = ("train", "valid", "test")

# Pause (timestamp units; seconds in ML-100k, KuaiRand-derived logs and the
# simulator, whose steps are 60 s apart and sessions a day apart) that ends a
# session where the reward config sets no `session_gap` but needs sessions (the
# behavioural proxies, the leave-aware MDP).
DEFAULT_SESSION_GAP = 3600

# The leave-aware MDP (`reward.leave_action`): the user's response to an
# exposure is a click or a skip *and* whether they stay or leave afterwards, one
# of four joint actions `response + 2 * leave`: 0 skip-stay, 1 click-stay,
# 2 skip-leave, 3 click-leave. Leaving is terminal.
RESPONSES = 2
LEAVE_ACTIONS = 2 * RESPONSES


def n_actions(leave_action: bool) -> int:
    """Actions of the user-centric MDP: 2 (skip, click) or 4 (with stay/leave)."""
    return LEAVE_ACTIONS if leave_action else RESPONSES


@dataclass(frozen=True)
class ExposureMDP:
    """Exposures as MDP transitions. E rows, P positives in all.

    items, responses, users: [E] long. history_end[e]: index into
    `positive_items` one past the last positive of the user before row e;
    history_begin[e]: index of that user's first positive. is_terminal: [E] bool.
    actions: [E] long, the logged action (the response, or in the leave-aware
    MDP `response + 2 * leave`). censored: [E] bool, rows whose next exposure
    exists but lies outside this log (a split cut the user's log there): terminal
    here, and in the leave-aware MDP whether the user left is unknown, so the
    losses skip them (all False unless `build_mdp` was told who `continues`).
    """

    items: torch.Tensor
    responses: torch.Tensor
    users: torch.Tensor
    history_begin: torch.Tensor
    history_end: torch.Tensor
    positive_items: torch.Tensor
    is_terminal: torch.Tensor
    max_history: int
    actions: torch.Tensor | None = None
    censored: torch.Tensor | None = None
    leave_action: bool = False

    def __post_init__(self) -> None:
        # Frozen: fill the optional tensors through object.__setattr__.
        if self.actions is None:
            object.__setattr__(self, "actions", self.responses)
        if self.censored is None:
            object.__setattr__(self, "censored", torch.zeros_like(self.is_terminal))

    @property
    def n_rows(self) -> int:
        return int(self.items.shape[0])

    @property
    def n_actions(self) -> int:
        return n_actions(self.leave_action)

    def loss_weights(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Which transitions count in the losses: every one, except censored rows
        of the leave-aware MDP (their action is not known). None: all."""
        if not self.leave_action:
            return None
        return (~self.censored[rows]).to(torch.float32)

    def to(self, device: torch.device | str) -> ExposureMDP:
        tensors = {
            name: getattr(self, name).to(device)
            for name in (
                "items",
                "responses",
                "users",
                "history_begin",
                "history_end",
                "positive_items",
                "is_terminal",
                "actions",
                "censored",
            )
        }
        return ExposureMDP(**tensors, max_history=self.max_history, leave_action=self.leave_action)

    def histories(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h_t for the given rows, in the backbones' layout (oldest first, right-padded with 0).

        Returns (positives [*rows.shape, max_history], lengths [*rows.shape]).
        """
        end = self.history_end[rows]
        begin = torch.maximum(self.history_begin[rows], end - self.max_history)
        lengths = end - begin
        offsets = torch.arange(self.max_history, device=rows.device)
        index = begin.unsqueeze(-1) + offsets
        valid = offsets < lengths.unsqueeze(-1)
        gathered = self.positive_items[index.clamp(max=max(len(self.positive_items) - 1, 0))]
        return torch.where(valid, gathered, torch.zeros_like(gathered)), lengths

    def histories_after_positive(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h_t + [i_t] (last max_history of it): the history after responding 1 at these rows."""
        return append_item(*self.histories(rows), self.items[rows])

    def state_keys(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows with equal keys have the same h_t: the index one past their last
        positive (it belongs to one user), or 0 for every empty history."""
        end = self.history_end[rows]
        return torch.where(end > self.history_begin[rows], end, torch.zeros_like(end))


def concat_splits(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One log in event order: per user, train rows, then valid, then test.

    Adds a `split` column and keeps each split's own row order (its
    `split_row`), which the read-out uses as a key.
    """
    parts = []
    for rank, name in enumerate(SPLIT_ORDER):
        if name not in frames:
            continue
        part = frames[name].copy()
        part["split"] = name
        part["split_rank"] = rank
        part["split_row"] = np.arange(len(part), dtype=np.int64)
        parts.append(part)
    log = pd.concat(parts, ignore_index=True)
    log = log.sort_values(["user_idx", "split_rank", "split_row"], kind="stable")
    return log.drop(columns="split_rank").reset_index(drop=True)


def split_views(log: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The log each split's rows are read with: the split and every split before it.

    A reward model trains on the train rows alone (a user's last train exposure is
    terminal) and validates on valid rows whose states see the train history (the
    last valid exposure terminal); read-outs must use the same MDPs, so a train
    row's reward never sees V of the first validation exposure. Returns, per split
    present in `log` (a `concat_splits` log), (name, rows of `log` in that view,
    positions of the split's own rows within the view).
    """
    if "split" not in log.columns:
        raise KeyError("the log needs a `split` column (see concat_splits)")
    split = log["split"].to_numpy()
    rank = pd.Series(split).map({name: k for k, name in enumerate(SPLIT_ORDER)}).to_numpy()
    if pd.isna(rank).any():
        raise ValueError(f"unknown split names: {sorted(set(split) - set(SPLIT_ORDER))}")
    views = []
    for k, name in enumerate(SPLIT_ORDER):
        if not (rank == k).any():
            continue
        rows = np.flatnonzero(rank <= k)
        views.append((name, rows, np.flatnonzero(split[rows] == name)))
    return views


def build_mdp(
    log: pd.DataFrame,
    max_history: int,
    session_gap: int | None = None,
    leave_action: bool = False,
    continues: np.ndarray | None = None,
) -> ExposureMDP:
    """The MDP of a log sorted by user then event order (contract of `data/processed`).

    A user's last exposure is terminal. With `session_gap` (timestamp units),
    an exposure followed by a pause longer than that is terminal too: the user
    left, and what comes next starts a new episode (histories carry over).

    `continues` [E] bool marks rows whose user has exposures after this log (a
    later split): the user's last row here is then censored, not an end.
    `leave_action`: the leave-aware MDP (four joint actions, see
    `LEAVE_ACTIONS`); sessions end at `session_gap`, or `DEFAULT_SESSION_GAP`
    when it is None, and the action of a row that ends a session (or the
    user's whole log) is a leave.
    """
    if leave_action and session_gap is None:
        session_gap = DEFAULT_SESSION_GAP
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    users = log["user_idx"].to_numpy(dtype=np.int64, copy=True)
    if len(users) == 0:
        raise ValueError("cannot build an MDP from an empty log")
    if np.any(np.diff(users) < 0):
        raise ValueError("the log must be sorted by user_idx (then event order)")
    items = log["item_idx"].to_numpy(dtype=np.int64, copy=True)
    responses = log["response"].to_numpy(dtype=np.int64, copy=True)
    positive = responses == 1
    # Number of positives strictly before each row, over the whole flat log.
    positives_before = np.cumsum(positive) - positive
    user_start = np.r_[True, users[1:] != users[:-1]]
    first_row_of_user = np.maximum.accumulate(np.where(user_start, np.arange(len(users)), 0))
    history_begin = positives_before[first_row_of_user]
    last_of_user = np.r_[users[1:] != users[:-1], True]
    is_terminal = last_of_user.copy()
    if session_gap is not None:
        timestamps = log["timestamp"].to_numpy(dtype=np.int64)
        is_terminal |= np.r_[np.diff(timestamps) > session_gap, True]
    censored = np.zeros(len(users), dtype=bool)
    if continues is not None:
        continues = np.asarray(continues, dtype=bool)
        if continues.shape != users.shape:
            raise ValueError(f"continues has {continues.shape} rows, the log {users.shape}")
        censored = last_of_user & continues
    actions = responses
    if leave_action:
        actions = responses + RESPONSES * (is_terminal & ~censored).astype(np.int64)
    return ExposureMDP(
        items=torch.from_numpy(items),
        responses=torch.from_numpy(responses),
        users=torch.from_numpy(users),
        history_begin=torch.from_numpy(history_begin.astype(np.int64)),
        history_end=torch.from_numpy(positives_before.astype(np.int64)),
        positive_items=torch.from_numpy(items[positive]),
        is_terminal=torch.from_numpy(is_terminal),
        max_history=max_history,
        actions=torch.from_numpy(actions),
        censored=torch.from_numpy(censored),
        leave_action=leave_action,
    )


def continues_after_view(log: pd.DataFrame, view_rows: np.ndarray) -> np.ndarray:
    """For the rows of a `split_views` view of a `concat_splits` log: whether the
    row's user has exposures in a later split (outside the view) [len(view_rows)]."""
    rank = log["split"].map({name: k for k, name in enumerate(SPLIT_ORDER)}).to_numpy()
    users = log["user_idx"].to_numpy()
    last_rank = pd.Series(rank).groupby(users).transform("max").to_numpy()
    view_rank = rank[view_rows].max() if len(view_rows) else 0
    return last_rank[view_rows] > view_rank


def window_starts(n_rows: int, window: int) -> torch.Tensor:
    """Start row of each window that tiles the log."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return torch.arange(0, n_rows, window)


def display_distribution(train: pd.DataFrame, n_items: int) -> torch.Tensor:
    """How often each item was shown in train (all exposures, any response): [n_items + 1]."""
    counts = np.bincount(train["item_idx"].to_numpy(), minlength=n_items + 1).astype(np.float64)
    counts[0] = 0.0
    return torch.from_numpy(counts / counts.sum())
