"""Reading the processed splits (see docs/CONTRACTS.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ProcessedData:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    meta: dict

    @property
    def n_users(self) -> int:
        return int(self.meta["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.meta["n_items"])

    def split(self, name: str) -> pd.DataFrame:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def ranking_targets(self, name: str) -> pd.DataFrame:
        """One row per user with a positive in split `name`: the first such
        positive (`item_idx`), its satisfaction, and the user's earlier
        positives (`history`, item_idx array in time order)."""
        if name not in ("valid", "test"):
            raise ValueError("ranking targets exist for 'valid' and 'test'")
        earlier = [self.train] if name == "valid" else [self.train, self.valid]
        target_rows = self.split(name)
        positives = target_rows[target_rows["response"] == 1]
        targets = positives.groupby("user_idx", sort=True).head(1)
        past = pd.concat(earlier, ignore_index=True)
        past = past[past["response"] == 1]
        # The processed files are time-ordered per user: a stable sort by user keeps
        # that order within each user. (Plain NumPy: pandas 3.0's groupby.agg
        # refuses a function that returns an array.)
        users = past["user_idx"].to_numpy()
        order = np.argsort(users, kind="stable")
        items = past["item_idx"].to_numpy(np.int64)[order]
        keys, starts = np.unique(users[order], return_index=True)
        runs = np.split(items, starts[1:]) if len(keys) else []
        history = dict(zip(keys.tolist(), runs, strict=True))
        out = targets[["user_idx", "item_idx", "satisfied"]].reset_index(drop=True)
        empty = np.zeros(0, dtype=np.int64)
        out["history"] = [history.get(int(user), empty) for user in out["user_idx"]]
        return out


def load_processed(folder: str | Path) -> ProcessedData:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    return ProcessedData(
        train=pd.read_parquet(folder / "train.parquet"),
        valid=pd.read_parquet(folder / "valid.parquet"),
        test=pd.read_parquet(folder / "test.parquet"),
        items=pd.read_parquet(folder / "items.parquet"),
        meta=meta,
    )
