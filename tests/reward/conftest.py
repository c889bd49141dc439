"""A tiny log in which behaviour reveals a disappointing item.

Every item is clicked with the same probability, so click rates say nothing;
but after clicking the disappointing item a user skips the next few items
shown and, in mode "leave", ends the session a few exposures later, while
after any other click the session goes on. `true_reward` (evaluation only) is
-1 for clicks on that item and +1 for the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtrec.config import SplitConfig
from mtrec.data.sources import ATTR_LOGGED_NEGATIVES, ATTR_SIGNAL
from mtrec.data.split import split_exposures

DISAPPOINTING_ITEM = "1"


def disappointing_item_log(
    n_users: int = 160,
    n_items: int = 10,
    session_length: int = 24,
    click_probability: float = 0.5,
    skips_after_disappointment: int = 2,
    leave_after: int | None = 6,
    seed: int = 0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        time = 1_000_000 + user * 1000
        leave_at, skip_until = session_length, -1
        for step in range(session_length):
            if step >= leave_at:
                break
            item = str(rng.integers(1, n_items + 1))
            click = int(step > skip_until and rng.random() < click_probability)
            true_reward = np.nan
            if click:
                true_reward = -1.0 if item == DISAPPOINTING_ITEM else 1.0
                if item == DISAPPOINTING_ITEM:
                    skip_until = step + skips_after_disappointment
                    if leave_after is not None:
                        leave_at = min(leave_at, step + 1 + leave_after)
            rows.append((str(user), item, time + step, click, true_reward))
    frame = pd.DataFrame(
        rows, columns=["user_id", "item_id", "timestamp", "response", "true_reward"]
    )
    # Leave-one-out needs three positives per user.
    enough = frame.groupby("user_id")["response"].transform("sum") >= 3
    return frame[enough].reset_index(drop=True)


def write_processed(frame: pd.DataFrame, folder: Path) -> Path:
    validated = folder / "validated.parquet"
    frame.attrs[ATTR_LOGGED_NEGATIVES] = True
    frame.attrs[ATTR_SIGNAL] = "true_reward"
    frame.to_parquet(validated, index=False)
    processed = folder / "processed"
    split_exposures(validated, processed, SplitConfig(n_negatives=0))
    return processed


@pytest.fixture(scope="session")
def toy_processed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reward_toy")
    return write_processed(disappointing_item_log(), folder)


def leaving_log(n_users=120, n_items=8, sessions=4, session_length=10, seed=0) -> pd.DataFrame:
    """Every item is clicked half the time; a click on item 1 ends the session
    (sessions are a day apart), any other click lets it go on."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        for session in range(sessions):
            time = 1_000_000 + session * 86_400
            for step in range(session_length):
                item = str(rng.integers(1, n_items + 1))
                click = int(rng.random() < 0.5)
                reward = (-1.0 if item == DISAPPOINTING_ITEM else 1.0) if click else np.nan
                rows.append((str(user), item, time + 60 * step, click, reward))
                if click and item == DISAPPOINTING_ITEM:
                    break
    return pd.DataFrame(
        rows, columns=["user_id", "item_id", "timestamp", "response", "true_reward"]
    )


@pytest.fixture(scope="session")
def leaving_processed(tmp_path_factory) -> Path:
    """`leaving_log` split leave-one-out (for the leave-aware reward model)."""
    return write_processed(leaving_log(), tmp_path_factory.mktemp("reward_leaving"))
