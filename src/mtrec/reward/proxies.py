"""Baselines every learned reward must beat (METHOD.md section 4): scores of an
exposure that need no IRL, reported beside the read-outs against the same
ground truth. Evaluation only; nothing here trains or guides a model.

Per exposure row (positives are what the reports score):

    item_popularity    train positives of the item
    item_ctr           train positives / train exposures of the item
    item_continuation  share of the item's train clicks after which the user went on
                       in the session (continuation pooled over users, per item)
    continuation       1 if the user's next exposure follows within the session
    clicks_after       the user's clicks after this exposure in the same session
                       ("did the user act again", graded)
    return             1 if the user comes back after this session ends
    watch_ratio        the logged watch ratio / dwell, where the log has one

A session ends at a pause longer than `session_gap` timestamp units. The
row-level proxies read the user's realised future, so they use the same
per-split view of the log as the read-out (`mdp.split_views`): a train row's
future ends where the train log ends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec.reward.mdp import DEFAULT_SESSION_GAP, split_views

ITEM_PROXIES = ("item_popularity", "item_ctr", "item_continuation")
ROW_PROXIES = ("continuation", "clicks_after", "return")


def proxy_session_gap(session_gap: int | None) -> int:
    return DEFAULT_SESSION_GAP if session_gap is None else session_gap


def session_outcomes(
    users: np.ndarray, timestamps: np.ndarray, responses: np.ndarray, session_gap: int
) -> dict[str, np.ndarray]:
    """continuation, clicks_after and return of each row of a log sorted by user
    then event; all [E]."""
    users = np.asarray(users)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    responses = np.asarray(responses, dtype=np.int64)
    n = len(users)
    same_user_next = np.r_[users[1:] == users[:-1], False]
    gap_next = np.r_[np.diff(timestamps), 0]
    continuation = same_user_next & (gap_next <= session_gap)
    # Session ids: a new session at each user's first row and after each long pause.
    starts = np.r_[True, ~continuation[:-1]] if n else np.zeros(0, bool)
    session = np.cumsum(starts) - 1
    # Clicks strictly after the row within its session.
    clicks_in_session = np.bincount(
        session, weights=responses, minlength=session.max(initial=-1) + 1
    )
    clicks_up_to_row = pd.Series(responses).groupby(session).cumsum().to_numpy()
    clicks_after = clicks_in_session[session] - clicks_up_to_row
    # Return: the user has a later session.
    last_session_of_user = pd.Series(session).groupby(users).transform("max").to_numpy()
    return {
        "continuation": continuation.astype(float),
        "clicks_after": clicks_after.astype(float),
        "return": (session < last_session_of_user).astype(float),
    }


def behavioural_proxies(
    log: pd.DataFrame,
    n_items: int,
    session_gap: int,
    watch_ratio: np.ndarray | None = None,
) -> pd.DataFrame:
    """Proxy scores for every row of `log` (a `concat_splits` log with behaviour
    columns and `split`), row-aligned with it. Item statistics come from the
    train rows; `watch_ratio` [E] (NaN where not logged) is added when given."""
    out = pd.DataFrame(index=np.arange(len(log)))
    for name in ROW_PROXIES:
        out[name] = np.nan
    for _, view_rows, own in split_views(log):
        view = log.iloc[view_rows]
        outcomes = session_outcomes(
            view["user_idx"].to_numpy(),
            view["timestamp"].to_numpy(),
            view["response"].to_numpy(),
            session_gap,
        )
        for name in ROW_PROXIES:
            out.loc[view_rows[own], name] = outcomes[name][own]

    train = (log["split"] == "train").to_numpy()
    items = log["item_idx"].to_numpy()
    clicks = log["response"].to_numpy() == 1
    exposures = np.bincount(items[train], minlength=n_items + 1).astype(float)
    positives = np.bincount(items[train & clicks], minlength=n_items + 1).astype(float)
    global_ctr = positives.sum() / max(exposures.sum(), 1.0)
    ctr = np.where(exposures > 0, positives / np.maximum(exposures, 1.0), global_ctr)
    # Unshrunk (no pseudo-clicks): an item without train clicks gets the global share.
    train_log = log[train].assign(continuation=out["continuation"].to_numpy()[train])
    item_continuation = shrunk_item_mean(train_log, "continuation", n_items, prior_count=0.0)
    out["item_popularity"] = positives[items]
    out["item_ctr"] = ctr[items]
    out["item_continuation"] = item_continuation[items]
    if watch_ratio is not None:
        out["watch_ratio"] = np.asarray(watch_ratio, dtype=float)
    return out[[*ITEM_PROXIES, *ROW_PROXIES, *(["watch_ratio"] if watch_ratio is not None else [])]]


def with_continuation(frame: pd.DataFrame, session_gap: int) -> pd.DataFrame:
    """`frame` (one split: user_idx, timestamp, response) plus `continuation`: 1
    when the user's next exposure follows within `session_gap`
    (`session_outcomes`), in event order whatever the row order."""
    ordered = frame.sort_values(["user_idx", "timestamp"], kind="stable")
    outcomes = session_outcomes(
        ordered["user_idx"].to_numpy(),
        ordered["timestamp"].to_numpy(),
        ordered["response"].to_numpy(),
        session_gap,
    )
    continuation = pd.Series(outcomes["continuation"], index=ordered.index)
    return frame.assign(continuation=continuation.reindex(frame.index))


def shrunk_item_mean(
    frame: pd.DataFrame, signal: str, n_items: int, prior_count: float
) -> np.ndarray:
    """[n_items + 1]: mean of `signal` over each item_idx's positives of `frame`,
    shrunk toward the global mean with `prior_count` pseudo-observations; an
    item with neither gets the global mean (index 0 unused)."""
    rows = frame[(frame["response"] == 1) & frame[signal].notna()]
    global_mean = float(rows[signal].mean()) if len(rows) else 0.0
    sums = np.bincount(rows["item_idx"], weights=rows[signal], minlength=n_items + 1)
    counts = np.bincount(rows["item_idx"], minlength=n_items + 1)
    weight = counts + prior_count
    shrunk = (sums + prior_count * global_mean) / np.where(weight > 0, weight, 1.0)
    return np.where(weight > 0, shrunk, global_mean)


def item_continuation_reward(
    table: pd.DataFrame, session_gap: int, prior_count: float
) -> np.ndarray:
    """Per row of a read-out table (split, user_idx, item_idx, timestamp,
    response): the row item's share of *train* clicks after which the user went
    on in the session (`item_continuation`, shrunk), z-scored over the train
    rows. Behaviour only: the proxy reward a learned reward must beat."""
    train = (table["split"] == "train").to_numpy()
    n_items = int(table["item_idx"].max())
    share = shrunk_item_mean(
        with_continuation(table[train], session_gap), "continuation", n_items, prior_count
    )
    raw = share[table["item_idx"].to_numpy()]
    spread = raw[train].std()
    return (raw - raw[train].mean()) / (spread if spread > 0 else 1.0)
