"""Marginals of an exposure log, for the simulated world and (optionally) a real log.

The simulated world (src/mtrec/simulator/, params.yaml `data.simulator`) should
look like real short-video logs (KuaiRand, Gao et al., CIKM 2022) in the
statistics a recommender sees, so nobody can say it was shaped to suit the
method. This script measures the same marginals on

  (a) the simulated log: `data.simulator` of `--params`, read through the
      project's `synthetic` source (`mtrec.data.sources.read_source`, the
      reader of the `ingest` stage; nothing is written to `truth_path`), and
  (b) optionally any canonical exposure table the `ingest` stage reads
      (`--source`, `--path`, ...: a `DataConfig`, so e.g. the KuaiRand column
      mapping is the project's: is_click -> response, time_ms -> timestamp,
      play_time_ms / duration_ms -> watch_ratio),

and writes them side by side, with the command, as JSON:

    python benchmarks/world_marginals.py --out benchmarks/results/world_marginals_sim.json
    python benchmarks/world_marginals.py --source kuairand \\
        --path '/data/KuaiRand/log_standard_*.csv' \\
        --out benchmarks/results/world_marginals_kuairand.json

Definitions (every statistic is over the table as its source reads it, no
k-core, no filtering; rows whose user_id, timestamp or response is missing or
not a number are dropped and counted in `rows_dropped`):

- Order. Rows are sorted by user, then timestamp (stable: equal timestamps keep
  the source's order). A *positive* (click) is a row with response == 1.
- exposures_per_user, positives_per_user: rows, and positives, per user that
  has at least one row; mean, median and p90 over users. Quantiles are numpy's
  default (linear interpolation between order statistics).
- ctr: total positives / total exposures (pooled); ctr_user_mean: the mean over
  users of the user's positives / exposures. Both null when the source logged
  no negatives (every row is a positive, e.g. ML-100k): a CTR of 1 says nothing.
- Sessions. Each user's log is split wherever the time between two consecutive
  exposures is > `--session-gap` seconds (default 3600, the project's
  `DEFAULT_SESSION_GAP`); a gap of exactly the threshold stays in the session.
  Every source gives seconds (KuaiRand's `time_ms` is converted by the
  source); `--timestamp-unit ms` is for a `table` file in milliseconds. The
  split is `mtrec.reward.proxies.session_outcomes` (the reward proxies' own
  continuation): a session starts at a user's first row and after each row that
  has no continuation. exposures_per_session: mean, median, p90 over sessions;
  sessions_per_user: mean over users.
- watch_ratio_positives: among positives with a finite watch ratio: mean,
  quantiles q10/q25/q50/q75/q90, and share_above_1 (watch ratio > 1: the video
  was played longer than its length, i.e. re-watched). `positives_with_watch_ratio`
  counts them.
- disappointing_click_share: among positives with a finite watch ratio, the
  share with watch ratio < `--disappointing-below` (default 0.3).
- Continuation. A row *continues* when the same user's next row is in the same
  session (gap <= the session gap). continuation_after_click: share of positives
  that continue; continuation_after_disappointing_click / _after_other_click:
  the same among positives with a finite watch ratio below / at or above the
  threshold; continuation_gap: other minus disappointing (how much more often a
  user goes on after a click that satisfied: the behavioural signature of
  disappointment); continuation_after_exposure: share of all rows that continue
  (the baseline). A user's last row never continues (the log ends there), in
  both columns alike.
- true_reward (simulator only, the realised mental reward of a click):
  spearman_watch_ratio_true_reward among positives with both values finite
  (`mtrec.evaluation.metrics.spearman`, average ranks for ties), and
  negative_true_reward_share: share of positives with a finite true reward
  whose true reward is < 0. Null where the table has no true_reward.

Evaluation only: nothing here feeds the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import machine_info

from mtrec.config import DataConfig, SimulatorConfig, load_params
from mtrec.data.schema import as_number
from mtrec.data.sources import ATTR_LOGGED_NEGATIVES, read_source
from mtrec.evaluation.metrics import spearman
from mtrec.reward.proxies import DEFAULT_SESSION_GAP, session_outcomes

DEFAULT_DISAPPOINTING_BELOW = 0.3
WATCH_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
TIMESTAMP_UNITS_PER_SECOND = {"s": 1, "ms": 1000}


def timestamp_unit(source: str, override: str | None = None) -> str:
    """Every source gives seconds (the KuaiRand source converts `time_ms`);
    a `table` file in milliseconds says so with `--timestamp-unit ms`."""
    return override or "s"


def _summary(values: np.ndarray) -> dict[str, float | None]:
    """mean, median and p90 (numpy's linear quantiles); nulls when empty."""
    if len(values) == 0:
        return {"mean": None, "median": None, "p90": None}
    values = np.asarray(values, dtype=float)
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.quantile(values, 0.9)),
    }


def _share(mask: np.ndarray) -> float | None:
    return float(np.mean(mask)) if len(mask) else None


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: an undefined statistic (e.g. a constant input) is null."""
    return value if value is not None and np.isfinite(value) else None


def readable_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows whose user, timestamp and response are known numbers (ids as
    they are), sorted by user then timestamp (stable), and how many were dropped."""
    frame = pd.DataFrame(
        {
            "user_id": table["user_id"],
            "timestamp": as_number(table["timestamp"]),
            "response": as_number(table["response"]),
            "watch_ratio": as_number(table["watch_ratio"]) if "watch_ratio" in table else np.nan,
            "true_reward": as_number(table["true_reward"]) if "true_reward" in table else np.nan,
        }
    )
    known = frame["user_id"].notna() & frame["timestamp"].notna() & frame["response"].isin([0, 1])
    frame = frame[known].astype({"user_id": str, "timestamp": np.int64, "response": np.int64})
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return frame, int((~known).sum())


def marginals(
    table: pd.DataFrame,
    session_gap_seconds: int = DEFAULT_SESSION_GAP,
    unit: str = "s",
    disappointing_below: float = DEFAULT_DISAPPOINTING_BELOW,
    logged_negatives: bool = True,
) -> dict[str, Any]:
    """Every marginal of the module docstring for one canonical exposure table."""
    frame, dropped = readable_rows(table)
    users = frame["user_id"].to_numpy()
    response = frame["response"].to_numpy()
    watch = frame["watch_ratio"].to_numpy(dtype=float)
    true_reward = frame["true_reward"].to_numpy(dtype=float)
    gap = session_gap_seconds * TIMESTAMP_UNITS_PER_SECOND[unit]
    continues = (
        session_outcomes(users, frame["timestamp"].to_numpy(), response, gap)["continuation"] == 1
    )
    session_start = np.r_[True, ~continues[:-1]] if len(frame) else np.zeros(0, bool)
    session = np.cumsum(session_start) - 1

    per_user = frame.groupby("user_id", sort=False)["response"].agg(["size", "sum"])
    exposures_per_session = np.bincount(session) if len(frame) else np.zeros(0)
    sessions_per_user = pd.Series(session_start).groupby(users).sum().to_numpy()

    click = response == 1
    rated = click & np.isfinite(watch)
    disappointing = rated & (watch < disappointing_below)
    other = rated & ~disappointing
    watched = watch[rated]
    after_click = _share(continues[click])
    after_disappointing = _share(continues[disappointing])
    after_other = _share(continues[other])
    with_truth = click & np.isfinite(true_reward)
    both = with_truth & np.isfinite(watch)
    return {
        "rows": int(len(frame)),
        "rows_dropped": dropped,
        "users": int(len(per_user)),
        "positives": int(click.sum()),
        "has_logged_negatives": bool(logged_negatives),
        "exposures_per_user": _summary(per_user["size"].to_numpy()),
        "positives_per_user": _summary(per_user["sum"].to_numpy()),
        "ctr": float(click.mean()) if logged_negatives and len(frame) else None,
        "ctr_user_mean": (
            float((per_user["sum"] / per_user["size"]).mean())
            if logged_negatives and len(frame)
            else None
        ),
        "sessions": int(session_start.sum()),
        "sessions_per_user": float(sessions_per_user.mean()) if len(frame) else None,
        "exposures_per_session": _summary(exposures_per_session),
        "positives_with_watch_ratio": int(rated.sum()),
        "watch_ratio_positives": {
            "mean": float(watched.mean()) if len(watched) else None,
            **{
                f"q{round(q * 100)}": float(np.quantile(watched, q)) if len(watched) else None
                for q in WATCH_QUANTILES
            },
            "share_above_1": _share(watched > 1),
        },
        "disappointing_click_share": _share(watched < disappointing_below),
        "continuation_after_exposure": _share(continues),
        "continuation_after_click": after_click,
        "continuation_after_disappointing_click": after_disappointing,
        "continuation_after_other_click": after_other,
        "continuation_gap": (
            after_other - after_disappointing
            if after_other is not None and after_disappointing is not None
            else None
        ),
        "positives_with_true_reward": int(with_truth.sum()),
        "spearman_watch_ratio_true_reward": _finite_or_none(
            spearman(watch[both], true_reward[both]) if both.sum() >= 2 else None
        ),
        "negative_true_reward_share": _share(true_reward[with_truth] < 0),
    }


def simulated_table(config: SimulatorConfig) -> pd.DataFrame:
    """The simulated exposure log as the `ingest` stage reads it (the `synthetic`
    source), without writing the ground truth anywhere."""
    simulator = config.model_copy(update={"truth_path": None})
    return read_source(DataConfig(source="synthetic", simulator=simulator))


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def side_by_side(columns: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{marginal: {column name: value}} over the columns' flattened marginals."""
    flat = {name: flatten(values) for name, values in columns.items()}
    keys = list(dict.fromkeys(k for values in flat.values() for k in values))
    return {k: {name: values.get(k) for name, values in flat.items()} for k in keys}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--source", help="a data.source to measure beside the simulated world (e.g. kuairand)"
    )
    parser.add_argument("--path", help="data.path of --source (a glob for KuaiRand)")
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="CANONICAL=FILE",
        help="data.columns entry (source `table`), repeatable",
    )
    parser.add_argument("--separator", default=",", help="data.separator (source `table`)")
    parser.add_argument("--format", default="auto", help="data.format (source `amazon`)")
    parser.add_argument(
        "--timestamp-unit",
        choices=sorted(TIMESTAMP_UNITS_PER_SECOND),
        help="unit of --source's timestamps (default s: every source converts to seconds; "
        "ms for a `table` file in milliseconds)",
    )
    parser.add_argument("--session-gap", type=int, default=DEFAULT_SESSION_GAP, help="seconds")
    parser.add_argument("--disappointing-below", type=float, default=DEFAULT_DISAPPOINTING_BELOW)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    settings = {
        "session_gap_seconds": args.session_gap,
        "disappointing_below": args.disappointing_below,
    }
    simulator = load_params(args.params).data.simulator
    sim = simulated_table(simulator)
    columns = {
        "simulated": marginals(
            sim,
            args.session_gap,
            "s",
            args.disappointing_below,
            bool(sim.attrs.get(ATTR_LOGGED_NEGATIVES)),
        )
    }
    sources: dict[str, Any] = {
        "simulated": {
            "source": "synthetic",
            "params": str(args.params),
            "timestamp_unit": "s",
            "simulator": simulator.model_dump(mode="json"),
        }
    }
    if args.source:
        columns_map = dict(c.split("=", 1) for c in args.column)
        config = DataConfig(
            source=args.source,
            path=args.path,
            columns=columns_map,
            separator=args.separator,
            format=args.format,
        )
        unit = timestamp_unit(args.source, args.timestamp_unit)
        real = read_source(config)
        columns[args.source] = marginals(
            real,
            args.session_gap,
            unit,
            args.disappointing_below,
            bool(real.attrs.get(ATTR_LOGGED_NEGATIVES)),
        )
        sources[args.source] = {**config.model_dump(mode="json"), "timestamp_unit": unit}
    result = {
        "command": " ".join(
            ["python", "benchmarks/world_marginals.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine_info(threads=1, device="cpu"),
        "settings": settings,
        "sources": sources,
        "side_by_side": side_by_side(columns),
        "columns": columns,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key, values in result["side_by_side"].items():
        print(f"{key:50s} " + "  ".join(f"{n}={_fmt(v)}" for n, v in values.items()))
    print(f"wrote {args.out}")
    return result


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
