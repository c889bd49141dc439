"""Stage `split`: index ids, add sampled negative exposures where the source
logged none, and split per user (leave-one-out) or by global time."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec.config import SplitConfig
from mtrec.data.schema import KNOWN_COLUMNS
from mtrec.data.sources import ATTR_LOGGED_NEGATIVES, ATTR_SIGNAL, SIGNALS
from mtrec.data.stage_input import read_stage_input

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
EVENT = "_event"  # position of the logged event (or of a sampled negative's positive)


class SplitError(ValueError):
    """The validated log cannot be split as configured (the message says why)."""


def index_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Contiguous `user_idx` and `item_idx` from 1 (0 is padding), in order of
    first appearance sorted by id so the mapping is stable across runs."""
    users = pd.Series(np.sort(frame["user_id"].unique()))
    items = pd.Series(np.sort(frame["item_id"].unique()))
    user_index = pd.Series(np.arange(1, len(users) + 1), index=users.values)
    item_index = pd.Series(np.arange(1, len(items) + 1), index=items.values)
    out = frame.copy()
    out["user_idx"] = out["user_id"].map(user_index).astype("int64")
    out["item_idx"] = out["item_id"].map(item_index).astype("int64")
    return out, user_index, item_index


def sample_negatives(
    positives: pd.DataFrame,
    n_items: int,
    n_negatives: int,
    rng: np.random.Generator,
    popularity: np.ndarray | None = None,
) -> pd.DataFrame:
    """For each positive, `n_negatives` items the user had not had a positive on
    up to and including that event, at the same timestamp. Future positives may
    be drawn (the user had not chosen them yet): excluding them would tell a
    model which items a user will pick later (held-out targets would never be
    training negatives). `popularity` (length n_items + 1, index 0 unused)
    weights the draw; uniform when None. Vectorised with rejection."""
    if n_negatives == 0 or positives.empty:
        return positives.iloc[:0].assign(response=0)
    users = positives["user_idx"].to_numpy().astype(np.int64)
    events = positives[EVENT].to_numpy() if EVENT in positives.columns else np.zeros(len(users))
    codes = users * (n_items + 1) + positives["item_idx"].to_numpy()
    # First positive event of each (user, item): a draw clashes if it is at or before the event.
    first_event = pd.Series(events).groupby(codes).min()
    distinct_items = np.bincount(first_event.index.to_numpy() // (n_items + 1))
    if (distinct_items >= n_items).any():
        raise SplitError("a user has a positive on every item: no negatives to sample")
    repeated_users = np.repeat(users, n_negatives)
    repeated_events = np.repeat(events, n_negatives)
    if popularity is None:
        probabilities = None
    else:
        weights = np.asarray(popularity, dtype=float)[1:] + 1.0  # smoothed: every item possible
        probabilities = weights / weights.sum()
    items = rng.choice(np.arange(1, n_items + 1), size=len(repeated_users), p=probabilities)
    pending = np.arange(len(items))
    while len(pending):
        draw_codes = repeated_users[pending] * (n_items + 1) + items[pending]
        position = first_event.index.get_indexer(draw_codes)
        known = position >= 0
        clash = np.zeros(len(pending), dtype=bool)
        clash[known] = first_event.to_numpy()[position[known]] <= repeated_events[pending][known]
        pending = pending[clash]
        items[pending] = rng.choice(np.arange(1, n_items + 1), size=len(pending), p=probabilities)
    negatives = positives.loc[positives.index.repeat(n_negatives)].copy()
    negatives["item_idx"] = items
    negatives["response"] = 0
    for column in SIGNALS + ["satisfied"]:
        if column in negatives.columns:
            negatives[column] = np.nan
    return negatives


def number_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Number logged events in time order (ties keep file order)."""
    frame = frame.copy()
    frame["_row"] = np.arange(len(frame))
    order = frame.sort_values(["user_idx", "timestamp", "_row"], kind="stable").index
    frame.loc[order, EVENT] = np.arange(len(frame))
    return frame.drop(columns="_row").astype({EVENT: "int64"})


def order_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Per user by time. A sampled negative shares its positive's event number
    and comes just before it, so it follows that positive into its split even
    when several positives share a timestamp."""
    if EVENT not in frame.columns:
        frame = number_events(frame)
    frame = frame.sort_values(["user_idx", EVENT, "response"], kind="stable")
    return frame.reset_index(drop=True)


def leave_one_out(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Last positive -> test, the one before -> valid; exposures follow the
    positive they lead up to (trailing negatives go to test)."""
    frame = order_events(frame)
    user = frame["user_idx"].to_numpy()
    positive = frame["response"].to_numpy() == 1
    # Number of positives at or after each row, within the user.
    reversed_cumsum = (
        frame.loc[::-1].assign(p=positive[::-1].astype(int)).groupby("user_idx")["p"].cumsum()
    )
    remaining = reversed_cumsum.loc[frame.index].to_numpy()  # positives at/after this row
    # Test: rows whose remaining positives <= 1 (the last positive and everything
    # after the valid positive). Valid: remaining == 2 and not test.
    split = np.where(remaining <= 1, 2, np.where(remaining == 2, 1, 0))
    # A row that IS the valid positive has remaining == 2; a negative right after
    # the valid positive has remaining == 1 -> test, as intended.
    del user
    return {name: frame[split == code].reset_index(drop=True) for code, name in enumerate(SPLITS)}


def global_time(
    frame: pd.DataFrame, valid_fraction: float, test_fraction: float
) -> dict[str, pd.DataFrame]:
    frame = order_events(frame)
    valid_cut, test_cut = np.quantile(
        frame["timestamp"], [1 - valid_fraction - test_fraction, 1 - test_fraction]
    )
    split = np.where(
        frame["timestamp"] >= test_cut, 2, np.where(frame["timestamp"] >= valid_cut, 1, 0)
    )
    return {name: frame[split == code].reset_index(drop=True) for code, name in enumerate(SPLITS)}


def satisfied_column(frame: pd.DataFrame, signal: str | None, config: SplitConfig) -> pd.Series:
    """1.0 / 0.0 for positives whose satisfaction is known, NaN otherwise."""
    if signal is None or signal not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    threshold = satisfaction_threshold(signal, config)
    values = frame[signal]
    satisfied = (values >= threshold).astype(float).where(values.notna())
    return satisfied.where(frame["response"] == 1)


def satisfaction_threshold(signal: str | None, config: SplitConfig) -> float | None:
    return {
        "rating": config.satisfied_rating,
        "watch_ratio": config.satisfied_watch_ratio,
        "true_reward": config.satisfied_true_reward,
    }.get(signal or "")


def has_logged_negatives(frame: pd.DataFrame) -> tuple[bool, str | None]:
    """Whether the log's negatives are logged (else they are sampled), and a
    note when the data overrules its source: a source may declare logged
    negatives (it has a response column) whose responses are all 1, and
    training on such a log without sampled negatives would see positives only."""
    declared = bool(frame.attrs.get(ATTR_LOGGED_NEGATIVES, False))
    if declared and not (frame["response"] == 0).any():
        return False, (
            "the source has a response column but every response is 1 (a positive-only "
            "log): negatives are sampled as for a positive-only source"
        )
    return declared, None


def split_exposures(validated_path: Path, out_dir: Path, config: SplitConfig) -> dict:
    """Write train/valid/test parquet, items.parquet and meta.json to `out_dir`.

    Raises StageInputError when `validated_path` is missing or unreadable and
    SplitError when the log cannot be split as configured."""
    frame = read_stage_input(validated_path, "mtrec validate")
    attrs = dict(frame.attrs)
    unused = [str(c) for c in frame.columns if c not in KNOWN_COLUMNS]
    frame = frame[[c for c in frame.columns if c in KNOWN_COLUMNS]]
    frame.attrs.update(attrs)
    logged_negatives, note = has_logged_negatives(frame)
    if note:
        log.warning(note)
    if not logged_negatives and config.n_negatives == 0:
        raise SplitError(
            "the log has no negative exposures (every response is 1) and split.n_negatives "
            "is 0: training would see positives only; set split.n_negatives > 0"
        )
    signal = frame.attrs.get(ATTR_SIGNAL)
    frame, user_index, item_index = index_ids(frame)
    frame["satisfied"] = satisfied_column(frame, signal, config)
    frame = number_events(frame)
    rng = np.random.default_rng(config.seed)
    if not logged_negatives and config.n_negatives > 0:
        popularity = None
        if config.negative_sampling == "popularity":
            popularity = np.bincount(
                frame.loc[frame["response"] == 1, "item_idx"], minlength=len(item_index) + 1
            )
        positives = frame[frame["response"] == 1]
        negatives = sample_negatives(
            positives, len(item_index), config.n_negatives, rng, popularity
        )
        negatives["item_id"] = item_index.index.to_numpy()[negatives["item_idx"].to_numpy() - 1]
        frame = pd.concat([frame, negatives], ignore_index=True)
    if config.method == "leave_one_out":
        splits = leave_one_out(frame)
    else:
        splits = global_time(frame, config.valid_fraction, config.test_fraction)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["user_idx", "item_idx", "timestamp", "response", "user_id", "item_id"]
    columns += [c for c in SIGNALS if c in frame.columns] + ["satisfied"]
    for name, part in splits.items():
        part = part[columns].astype({"timestamp": "int64", "response": "int64"})
        part.to_parquet(out_dir / f"{name}.parquet", index=False)
    train = splits["train"]
    popularity = np.bincount(
        train.loc[train["response"] == 1, "item_idx"], minlength=len(item_index) + 1
    )
    pd.DataFrame(
        {
            "item_idx": item_index.to_numpy(),
            "item_id": item_index.index.astype(str),
            "train_positives": popularity[1:],
        }
    ).to_parquet(out_dir / "items.parquet", index=False)
    meta = {
        "n_users": len(user_index),
        "n_items": len(item_index),
        "split_method": config.method,
        "has_logged_negatives": logged_negatives,
        "sampled_negatives_per_positive": 0 if logged_negatives else config.n_negatives,
        "negative_sampling": config.negative_sampling,
        "satisfaction_signal": signal,
        "satisfied_threshold": satisfaction_threshold(signal, config),
        "rows": {name: int(len(part)) for name, part in splits.items()},
        "positives": {name: int(part["response"].sum()) for name, part in splits.items()},
    }
    if note:
        meta["negatives_note"] = note
    if unused:  # kept in data/validated/, not part of the processed contract
        meta["unused_columns"] = unused
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
