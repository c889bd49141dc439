"""How much a log's behaviour says about satisfaction: a supervised probe.

The mental reward is learned from behaviour only (user, item, time, response).
Whatever read-out it has, it is a function of that behaviour, so a useful
question comes before "does the IRL recover satisfaction": does the behaviour
carry it? This probe answers it for a family of behaviour statistics by
*cheating in the probe's favour*: it fits a gradient-boosted classifier with
the satisfaction labels of the train positives (rating >= 4 vs <= 2 on
ML-100k; `satisfied` elsewhere) on behaviour-only features of each positive,
and scores held-out positives. No unsupervised read-out of those features can
do better than a supervised fit of them, up to the probe's capacity, so the
probe's AUC is an estimate of the most a reward of that family could reach.

Beside it, the same probe on item identity alone (the train mean of the label
per item, i.e. the labels' own item effect, which behaviour does not see) and
the reward model's read-outs when a rewards table is given.

    dvc repro read_out_rewards            # data/processed + data/processed/rewards/
    python benchmarks/behaviour_probe.py --processed data/processed \
        --rewards data/processed/rewards/gru4rec.parquet \
        --out benchmarks/results/behaviour_probe_ml100k.json

Evaluation only: nothing here feeds the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from mtrec.data.processed import load_processed
from mtrec.evaluation.metrics import auc
from mtrec.reward.mdp import concat_splits
from mtrec.reward.proxies import DEFAULT_SESSION_GAP, behavioural_proxies

SPLITS = ("train", "valid", "test")
ITEM_FEATURES = ("log_item_popularity", "item_ctr", "item_continuation", "log_item_age")
USER_FEATURES = ("log_user_activity", "user_mean_popularity_before", "relative_position")


def behaviour_features(log: pd.DataFrame, n_items: int, session_gap: int) -> pd.DataFrame:
    """Behaviour-only features of every row of a `concat_splits` log (no label,
    no rating, no satisfaction column is read)."""
    features = behavioural_proxies(log, n_items, session_gap)
    features["log_item_popularity"] = np.log1p(features.pop("item_popularity"))
    users = log["user_idx"].to_numpy()
    train = (log["split"] == "train").to_numpy()
    clicks = log["response"].to_numpy() == 1
    n_users = int(users.max()) + 1
    features["log_user_activity"] = np.log1p(
        np.bincount(users[train & clicks], minlength=n_users)[users]
    )
    grouped = log.groupby("user_idx", sort=False)
    position = grouped.cumcount().to_numpy()
    length = grouped["item_idx"].transform("size").to_numpy()
    features["relative_position"] = position / np.maximum(length - 1, 1)
    timestamps = log["timestamp"].to_numpy(dtype=np.int64)
    previous = grouped["timestamp"].shift(1).to_numpy(dtype=float)
    features["log_seconds_since_previous"] = np.log1p(np.maximum(timestamps - previous, 0))
    # How popular the items the user chose before were (taste for the mainstream),
    # and this item's popularity relative to it.
    popularity = features["log_item_popularity"].to_numpy()
    chosen = np.where(clicks, popularity, 0.0)
    count = pd.Series(clicks.astype(float)).groupby(users).cumsum().to_numpy() - clicks
    total = pd.Series(chosen).groupby(users).cumsum().to_numpy() - chosen
    mean_before = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    features["user_mean_popularity_before"] = mean_before
    features["popularity_vs_user_mean"] = popularity - mean_before
    # The item's first appearance in train (older items in ML-100k are the classics).
    first_seen = pd.Series(timestamps[train]).groupby(log["item_idx"].to_numpy()[train]).min()
    item_first = log["item_idx"].map(first_seen).to_numpy(dtype=float)
    features["log_item_age"] = np.log1p(np.maximum(timestamps - item_first, 0))
    return features


def label_of(log: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(label in {0, 1, nan} per row, its name): rating >= 4 vs <= 2 where the log
    has ratings, else `satisfied`."""
    if "rating" in log and log["rating"].notna().any():
        rating = log["rating"].to_numpy(dtype=float)
        label = np.where(rating >= 4, 1.0, np.where(rating <= 2, 0.0, np.nan))
        return label, "rating_4_vs_2"
    return log["satisfied"].to_numpy(dtype=float), "satisfied"


def fit_probe(x: pd.DataFrame, y: np.ndarray, train: np.ndarray, seed: int):
    model = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        random_state=seed,
    )
    model.fit(x[train], y[train].astype(int))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", type=Path, default=Path("data/processed"))
    parser.add_argument("--rewards", type=Path, help="a read-out table (<backbone>.parquet)")
    parser.add_argument("--session-gap", type=int, default=DEFAULT_SESSION_GAP)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    processed = load_processed(args.processed)
    log = concat_splits(
        {"train": processed.train, "valid": processed.valid, "test": processed.test}
    )
    behaviour = log[["user_idx", "item_idx", "timestamp", "response", "split"]]
    features = behaviour_features(behaviour, processed.n_items, args.session_gap)
    label, label_name = label_of(log)
    positive = (log["response"] == 1).to_numpy() & np.isfinite(label)
    in_split = {name: positive & (log["split"] == name).to_numpy() for name in SPLITS}

    # Item identity, from the labels themselves (what behaviour does not see):
    # the smoothed train mean label of the item.
    items = log["item_idx"].to_numpy()
    train_rows = in_split["train"]
    prior = float(np.nanmean(label[train_rows]))
    bins = processed.n_items + 1
    sums = np.bincount(items[train_rows], weights=label[train_rows], minlength=bins)
    counts = np.bincount(items[train_rows], minlength=bins)
    item_label_mean = ((sums + 5 * prior) / (counts + 5))[items]

    reward_columns: list[str] = []
    if args.rewards is not None:
        rewards = pd.read_parquet(args.rewards)
        keyed = log[["split", "split_row"]].merge(
            rewards, on=["split", "split_row"], how="left", validate="one_to_one"
        )
        reward_columns = [
            c for c in ("reward_pos_mean", "reward_pos_minus_neg", "reward_pos_cvar") if c in keyed
        ]
        for column in reward_columns:
            features[f"learned_{column}"] = keyed[column].to_numpy(dtype=float)

    singles = {
        name: {
            split: auc(label[in_split[split]], features[name].to_numpy()[in_split[split]])
            for split in ("valid", "test")
        }
        for name in features.columns
        if np.isfinite(features[name].to_numpy()[in_split["test"]]).all()
    }
    behaviour_only = [c for c in features.columns if not c.startswith("learned_")]
    probes: dict[str, dict] = {}
    families = {
        "behaviour_probe": behaviour_only,
        # Which part of the behaviour carries it: the item's statistics alone, or
        # the user's (activity, taste for the mainstream: what a rating scale's
        # per-user offset correlates with), each with the labels' help.
        "item_statistics_probe": [c for c in ITEM_FEATURES if c in behaviour_only],
        "user_statistics_probe": [c for c in USER_FEATURES if c in behaviour_only],
    }
    if reward_columns:
        families["behaviour_and_learned_reward_probe"] = list(features.columns)
    for family, columns in families.items():
        per_seed = {split: [] for split in ("valid", "test")}
        for seed in args.seeds:
            model = fit_probe(features[columns], label, train_rows, seed)
            for split in per_seed:
                rows = in_split[split]
                score = model.predict_proba(features[columns][rows])[:, 1]
                per_seed[split].append(auc(label[rows], score))
        probes[family] = {
            "features": columns,
            **{
                split: {"mean": float(np.mean(v)), "std": float(np.std(v)), "values": v}
                for split, v in per_seed.items()
            },
        }
    probes["item_identity_label_mean"] = {
        split: auc(label[in_split[split]], item_label_mean[in_split[split]])
        for split in ("valid", "test")
    }
    result = {
        "processed": str(args.processed),
        "rewards": str(args.rewards) if args.rewards else None,
        "label": label_name,
        "n_positives_labelled": {s: int(in_split[s].sum()) for s in SPLITS},
        "session_gap": args.session_gap,
        "seeds": args.seeds,
        "probe": "sklearn HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, "
        "max_leaf_nodes=15, l2_regularization=1.0), fitted on the train positives' labels",
        "single_feature_auc": singles,
        "probes": probes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    best_single = max(singles.items(), key=lambda kv: kv[1]["valid"])
    print(f"best single feature on valid: {best_single[0]} {best_single[1]}")
    for family, entry in probes.items():
        test = entry["test"]
        print(f"{family}: test {test if isinstance(test, float) else round(test['mean'], 4)}")


if __name__ == "__main__":
    main()
