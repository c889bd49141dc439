"""Helpers shared by test modules (`from helpers import ...`: pytest puts
tests/ on sys.path).

Tests that start a real server on loopback use the helpers the benchmarks
use for the same job (benchmarks/common.py). `benchmarks/` goes on sys.path
here, so the benchmark scripts, which import their sibling `common`, load in
tests as they do when run as files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

from common import free_port, stop_process, wait_for_http  # noqa: E402

__all__ = ["BENCHMARKS", "free_port", "stop_process", "wait_ready", "write_toy_processed"]


def wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Fail the test (with the server's log) unless GET `url` answers 200 in time."""
    try:
        wait_for_http(url, process, log, seconds)
    except RuntimeError as error:
        pytest.fail(str(error))


def gate_candidate(
    backbone: str,
    guidance: str,
    ranks_by_seed: dict,
    satisfied=None,
    extra_by_seed: dict | None = None,
    model_dirs: dict | None = None,
    ks: tuple[int, ...] = (10,),
) -> dict:
    """A `reports/metrics.json` candidate entry as `mtrec evaluate` writes it, with
    validation evidence computed from per-user ranks of the held-out positives
    (`ranks_by_seed`: {seed: [rank per user]}; `satisfied`: [1.0/0.0 per user],
    default alternating). The test block repeats the validation metrics.
    `extra_by_seed`: {seed: {metric: value}} added to both (e.g. AUC)."""
    import numpy as np

    from mtrec.evaluation.metrics import ranking_metrics, satisfaction_split
    from mtrec.evaluation.stats import aggregate_seeds

    n_users = len(next(iter(ranks_by_seed.values())))
    if satisfied is None:
        satisfied = [float(u % 2) for u in range(n_users)]
    seeds = {}
    for seed, ranks in ranks_by_seed.items():
        ranks = np.asarray(ranks, float)
        metrics = ranking_metrics(ranks, ks) | satisfaction_split(ranks, satisfied, ks)
        seeds[str(seed)] = metrics | dict((extra_by_seed or {}).get(seed, {}))
    summary = aggregate_seeds(list(seeds.values()))
    mean = {k: v["mean"] for k, v in summary.items()}
    std = {k: (v["std"] if v["std"] == v["std"] else None) for k, v in summary.items()}
    import copy

    return {
        "backbone": backbone,
        "guidance": guidance,
        "seeds": copy.deepcopy(seeds),
        "mean": dict(mean),
        "std": dict(std),
        "valid": {
            "seeds": seeds,
            "mean": mean,
            "std": std,
            "per_user": {
                "split": "valid",
                "user_idx": list(range(1, n_users + 1)),
                "satisfied": [float(v) for v in satisfied],
                "ranks": {str(s): [float(r) for r in ranks] for s, ranks in ranks_by_seed.items()},
            },
        },
        "model_dirs": {str(s): str(p) for s, p in (model_dirs or {}).items()},
    }


def write_toy_processed(folder: Path, n_users: int = 40, n_items: int = 24, seed: int = 0) -> Path:
    """Processed splits (docs/CONTRACTS.md) where history predicts the response.

    Users of group 0 click items 1..n/2 and skip the others, group 1 the
    reverse; each positive is preceded by two skipped items of the other half.
    Leave-one-out: last positive (+ its negatives) to test, the one before to
    valid. Ratings: 5 for even items, 2 for odd ones (evaluation only).
    """
    import json

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for user in range(1, n_users + 1):
        liked = np.arange(1, half + 1) if user % 2 else np.arange(half + 1, n_items + 1)
        other = np.setdiff1d(np.arange(1, n_items + 1), liked)
        n_positives = int(rng.integers(6, half + 1))
        clock = 1_000
        for position, item in enumerate(rng.choice(liked, n_positives, replace=False)):
            for negative in rng.choice(other, 2, replace=False):
                rows.append((user, int(negative), clock, 0, np.nan, position))
            rows.append((user, int(item), clock, 1, 5.0 if item % 2 == 0 else 2.0, position))
            clock += 10
    names = ["user_idx", "item_idx", "timestamp", "response", "rating", "p"]
    log = pd.DataFrame(rows, columns=names)
    n_pos = log.groupby("user_idx")["response"].transform("sum")
    split = np.where(log["p"] == n_pos - 2, "valid", "train")
    split = np.where(log["p"] == n_pos - 1, "test", split)
    log["user_id"] = "u" + log["user_idx"].astype(str)
    log["item_id"] = "i" + log["item_idx"].astype(str)
    log["satisfied"] = np.where(log["response"] == 1, (log["rating"] >= 4).astype(float), np.nan)
    columns = [*names[:4], "user_id", "item_id", "rating", "satisfied"]
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in ("train", "valid", "test"):
        part = log.loc[split == name, columns].reset_index(drop=True)
        part.to_parquet(folder / f"{name}.parquet", index=False)
        counts[name] = len(part)
    train = log[split == "train"]
    popularity = train[train["response"] == 1].groupby("item_idx").size()
    items = pd.DataFrame({"item_idx": np.arange(1, n_items + 1)})
    items["item_id"] = "i" + items["item_idx"].astype(str)
    items["train_positives"] = popularity.reindex(items["item_idx"], fill_value=0).to_numpy()
    items.to_parquet(folder / "items.parquet", index=False)
    meta = {
        "n_users": n_users,
        "n_items": n_items,
        "source": "toy",
        "split_method": "leave_one_out",
        "has_logged_negatives": True,
        "satisfaction_signal": "rating",
        "satisfied_threshold": 4.0,
        "rows": counts,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder
