import numpy as np
import pandas as pd
import pytest

from mtrec.config import DataConfig, SplitConfig
from mtrec.data.ingest import ingest
from mtrec.data.processed import load_processed
from mtrec.data.split import EVENT, SplitError, leave_one_out, sample_negatives, split_exposures


def make_log(n_users=30, per_user=12, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        # repeated timestamps on purpose: ties must not move exposures across splits
        times = np.sort(rng.integers(0, 6, size=per_user)) + 100 * user
        for item, time in zip(items, times, strict=True):
            rows.append((f"u{user}", f"i{item}", int(time), 1, float(rng.integers(1, 6))))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "response", "rating"])
    frame.attrs.update({"has_logged_negatives": False, "satisfaction_signal": "rating"})
    return frame


@pytest.fixture
def processed(tmp_path):
    validated = tmp_path / "validated.parquet"
    make_log().to_parquet(validated)
    meta = split_exposures(validated, tmp_path / "processed", SplitConfig(n_negatives=3))
    return meta, load_processed(tmp_path / "processed")


def test_negatives_never_hit_a_users_positives():
    positives = pd.DataFrame(
        {"user_idx": np.repeat([1, 2], 4), "item_idx": [1, 2, 3, 4, 2, 3, 4, 5]}
    )
    rng = np.random.default_rng(0)
    for weights in (None, np.array([0, 50, 50, 50, 50, 1, 1])):
        negatives = sample_negatives(positives, 6, 5, rng, weights)
        assert len(negatives) == 40
        for user, items in negatives.groupby("user_idx")["item_idx"]:
            own = set(positives.loc[positives["user_idx"] == user, "item_idx"])
            assert own.isdisjoint(items)


def test_negatives_exclude_past_not_future_positives():
    # one user, positives on items 1..5 at events 0..4, many draws per positive
    positives = pd.DataFrame({"user_idx": [1] * 5, "item_idx": [1, 2, 3, 4, 5], EVENT: range(5)})
    negatives = sample_negatives(positives, 8, 200, np.random.default_rng(0))
    for event, items in negatives.groupby(EVENT)["item_idx"]:
        assert set(items).isdisjoint(range(1, event + 2))  # nothing chosen so far
    # the last positive (a held-out target) can be a negative of an earlier event
    assert 5 in set(negatives.loc[negatives[EVENT] == 0, "item_idx"])


def test_negative_sampling_is_seeded():
    positives = pd.DataFrame({"user_idx": [1, 1, 2], "item_idx": [1, 2, 3]})
    a = sample_negatives(positives, 50, 4, np.random.default_rng(3))
    b = sample_negatives(positives, 50, 4, np.random.default_rng(3))
    assert a["item_idx"].tolist() == b["item_idx"].tolist()


def test_leave_one_out_counts(processed):
    meta, data = processed
    assert meta["n_users"] == 30
    for name in ("valid", "test"):
        per_user = data.split(name).groupby("user_idx")["response"].agg(["sum", "size"])
        assert (per_user["sum"] == 1).all()  # exactly one target positive
        assert (per_user["size"] == 4).all()  # ... with its 3 sampled negatives
    assert meta["positives"]["train"] == 30 * 10


def test_no_leakage(processed):
    _, data = processed
    for user, train in data.train.groupby("user_idx"):
        valid = data.valid[data.valid["user_idx"] == user]
        test = data.test[data.test["user_idx"] == user]
        assert train["timestamp"].max() <= valid["timestamp"].min() <= test["timestamp"].min()
        train_positives = set(train.loc[train["response"] == 1, "item_idx"])
        assert valid.loc[valid["response"] == 1, "item_idx"].iloc[0] not in train_positives
        assert test.loc[test["response"] == 1, "item_idx"].iloc[0] not in train_positives


def test_ranking_targets_history_is_everything_before(processed):
    _, data = processed
    targets = data.ranking_targets("test")
    assert len(targets) == 30
    first = targets.iloc[0]
    user_train = data.train[
        (data.train["user_idx"] == first["user_idx"]) & (data.train["response"] == 1)
    ]
    valid_positive = data.valid[
        (data.valid["user_idx"] == first["user_idx"]) & (data.valid["response"] == 1)
    ]
    expected = list(user_train["item_idx"]) + list(valid_positive["item_idx"])
    assert list(first["history"]) == expected


def test_satisfied_only_on_positives(processed):
    _, data = processed
    assert data.train.loc[data.train["response"] == 0, "satisfied"].isna().all()
    positives = data.train[data.train["response"] == 1]
    assert ((positives["rating"] >= 4) == (positives["satisfied"] == 1.0)).all()


def test_logged_negatives_follow_their_positive():
    frame = pd.DataFrame(
        {
            "user_idx": [1] * 7,
            "item_idx": [1, 2, 3, 4, 5, 6, 7],
            "timestamp": [1, 2, 3, 4, 5, 6, 7],
            "response": [1, 0, 1, 0, 0, 1, 0],
        }
    )
    splits = leave_one_out(frame)
    # negatives belong to the positive they lead up to
    assert splits["train"]["item_idx"].tolist() == [1]
    assert splits["valid"]["item_idx"].tolist() == [2, 3]
    assert splits["test"]["item_idx"].tolist() == [4, 5, 6, 7]


def test_global_time_split_has_no_future_in_train(tmp_path):
    validated = tmp_path / "validated.parquet"
    make_log().to_parquet(validated)
    config = SplitConfig(method="global_time", n_negatives=1)
    split_exposures(validated, tmp_path / "p", config)
    data = load_processed(tmp_path / "p")
    assert data.train["timestamp"].max() <= data.valid["timestamp"].min()
    assert data.valid["timestamp"].max() <= data.test["timestamp"].min()


# --- A response column of 1s only is a positive-only log (issue 12) ------------


def test_positive_only_log_declared_as_logged_gets_sampled_negatives(tmp_path):
    # e.g. a KuaiRand subset of clicks only, or a table whose response is all 1s
    frame = make_log()
    frame.attrs["has_logged_negatives"] = True
    validated = tmp_path / "validated.parquet"
    frame.to_parquet(validated)
    meta = split_exposures(validated, tmp_path / "processed", SplitConfig(n_negatives=2))
    assert meta["has_logged_negatives"] is False
    assert meta["sampled_negatives_per_positive"] == 2
    assert "positive-only" in meta["negatives_note"]
    train = load_processed(tmp_path / "processed").train
    assert (train["response"] == 0).sum() == 2 * (train["response"] == 1).sum()


def test_positive_only_log_without_negative_sampling_stops_with_a_hint(tmp_path):
    validated = tmp_path / "validated.parquet"
    make_log().to_parquet(validated)
    with pytest.raises(SplitError, match="set split.n_negatives > 0"):
        split_exposures(validated, tmp_path / "processed", SplitConfig(n_negatives=0))
    assert not (tmp_path / "processed").exists()


@pytest.mark.parametrize(("responses", "logged"), [([1, 1, 1], False), ([1, 0, 1], True)])
def test_table_source_declares_logged_negatives_only_when_there_are_some(
    tmp_path, responses, logged
):
    path = tmp_path / "log.csv"
    pd.DataFrame({"user_id": ["a"] * 3, "item_id": ["x", "y", "z"], "timestamp": [1, 2, 3]}).assign(
        response=responses
    ).to_csv(path, index=False)
    columns = {c: c for c in ["user_id", "item_id", "timestamp", "response"]}
    summary = ingest(DataConfig(source="table", path=str(path), columns=columns), tmp_path / "r")
    assert summary["has_logged_negatives"] is logged


def test_extra_columns_are_named_in_meta_not_written(tmp_path):
    validated = tmp_path / "validated.parquet"
    make_log().assign(device="tv").to_parquet(validated)
    meta = split_exposures(validated, tmp_path / "processed", SplitConfig(n_negatives=1))
    assert meta["unused_columns"] == ["device"]
    assert "device" not in load_processed(tmp_path / "processed").train.columns
