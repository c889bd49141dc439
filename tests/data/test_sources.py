from pathlib import Path

import pandas as pd
import pytest

from mtrec.config import DataConfig, ValidateConfig
from mtrec.data.schema import ExposureSchema, RawExposureSchema, coerce_lossless
from mtrec.data.sources import SourceError, read_source

FIXTURES = Path(__file__).parents[1] / "fixtures"


def assert_valid(frame: pd.DataFrame) -> None:
    """The source's values pass the checks, and reach the stored dtypes losslessly."""
    RawExposureSchema.validate(frame, lazy=True)
    converted, _ = coerce_lossless(frame)
    ExposureSchema.validate(converted, lazy=True)


def test_ml100k_from_recbole_copy():
    frame = read_source(DataConfig(source="ml-100k"))
    assert frame.shape == (100_000, 5)
    assert set(frame["response"]) == {1}
    assert frame.attrs["satisfaction_signal"] == "rating"
    assert frame.attrs["has_logged_negatives"] is False
    assert_valid(frame)


def test_ml1m_ratings_dat():
    frame = read_source(DataConfig(source="ml-1m", path=str(FIXTURES / "ml1m_ratings.dat")))
    assert list(frame.columns) == ["user_id", "item_id", "timestamp", "response", "rating"]
    assert len(frame) == 64
    assert frame["user_id"].iloc[0] == "1"
    assert_valid(frame)


def test_kuairand_log_has_real_negatives_and_watch_ratio():
    path = FIXTURES / "kuairand_log_standard_*.csv"
    frame = read_source(DataConfig(source="kuairand", path=str(path)))
    assert frame.attrs["has_logged_negatives"] is True
    assert frame.attrs["satisfaction_signal"] == "watch_ratio"
    assert set(frame["response"]) == {0, 1}
    raw = pd.read_csv(FIXTURES / "kuairand_log_standard_4_08_to_4_21_pure.csv")
    expected = raw["play_time_ms"] / raw["duration_ms"]
    assert frame["watch_ratio"].to_numpy() == pytest.approx(expected.to_numpy())
    # time_ms becomes seconds, the canonical unit (a 3600 s session gap is an hour).
    assert frame["timestamp"].iloc[0] == raw["time_ms"].iloc[0] // 1000
    assert frame["timestamp"].max() < 10**10
    assert_valid(frame)


def test_kuairand_keeps_the_millisecond_order_within_a_second(tmp_path):
    raw = pd.read_csv(FIXTURES / "kuairand_log_standard_4_08_to_4_21_pure.csv")
    second = (raw["time_ms"].iloc[0] // 1000) * 1000
    # Two exposures of one user in the same second, written to the file late one first.
    head = raw.iloc[[0, 1]].copy()
    head["user_id"] = head["user_id"].iloc[0]
    head["time_ms"] = [second + 900, second + 100]
    head["video_id"] = [111111, 222222]
    path = tmp_path / "log_standard_x.csv"
    pd.concat([head, raw.iloc[2:]]).to_csv(path, index=False)
    frame = read_source(DataConfig(source="kuairand", path=str(path)))
    same_second = frame[frame["item_id"].isin(["111111", "222222"])]
    assert same_second["timestamp"].nunique() == 1
    assert same_second["item_id"].tolist() == ["222222", "111111"]
    assert len(frame) == len(raw)


@pytest.mark.parametrize("name", ["amazon_ratings.csv", "amazon_reviews.jsonl"])
def test_amazon_csv_and_jsonl_agree(name):
    frame = read_source(DataConfig(source="amazon", path=str(FIXTURES / name)))
    assert len(frame) == 64
    assert frame["user_id"].iloc[0].startswith("A")
    # the 2023 JSON lines carry milliseconds; both forms end up in seconds
    assert frame["timestamp"].max() < 10**10
    assert_valid(frame)


def test_table_with_column_mapping():
    config = DataConfig(
        source="table",
        path=str(FIXTURES / "table.csv"),
        separator=";",
        columns={
            "user_id": "uid",
            "item_id": "iid",
            "timestamp": "ts",
            "response": "clicked",
            "rating": "stars",
        },
    )
    frame = read_source(config)
    assert list(frame.columns) == ["user_id", "item_id", "timestamp", "response", "rating"]
    assert_valid(frame)


def test_missing_user_file_says_what_is_needed(tmp_path):
    with pytest.raises(SourceError, match="needs data.path"):
        read_source(DataConfig(source="ml-1m"))
    with pytest.raises(SourceError, match="not found"):
        read_source(DataConfig(source="ml-1m", path=str(tmp_path / "nope.dat")))


def test_empty_file_is_a_clear_error():
    with pytest.raises(SourceError, match="empty"):
        read_source(DataConfig(source="table", path=str(FIXTURES / "bad_empty.csv")))


def test_validate_config_rejects_unknown_keys():
    with pytest.raises(ValueError):
        ValidateConfig(kcore=3)
