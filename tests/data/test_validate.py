import json
from pathlib import Path

import pandas as pd
import pytest

from mtrec.config import DataConfig, ValidateConfig
from mtrec.data.ingest import ingest
from mtrec.data.schema import DataValidationError
from mtrec.data.sources import SourceError
from mtrec.data.validate import k_core, validate_exposures

FIXTURES = Path(__file__).parents[1] / "fixtures"
IDENTITY = {c: c for c in ["user_id", "item_id", "timestamp", "response", "rating"]}


def run(tmp_path, fixture, source="table", columns=IDENTITY, **validate_kwargs):
    config = DataConfig(source=source, path=str(FIXTURES / fixture), columns=columns)
    raw = tmp_path / "raw.parquet"
    ingest(config, raw)
    report_path = tmp_path / "validation.json"
    kwargs = {"k_core": 0, **validate_kwargs}
    try:
        validate_exposures(
            raw, tmp_path / "validated.parquet", report_path, ValidateConfig(**kwargs)
        )
    finally:
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    return report


def test_good_file_passes(tmp_path):
    report = run(tmp_path, "good.csv")
    assert report["passed"] is True
    assert pd.read_parquet(tmp_path / "validated.parquet").shape[0] == 64


@pytest.mark.parametrize(
    ("fixture", "check", "column", "bad_row"),
    [
        ("bad_response_2.csv", "isin([0, 1])", "response", 3),
        ("bad_rating_7.csv", "in_range(1, 5)", "rating", 5),
        ("bad_negative_timestamp.csv", "non_negative_integer", "timestamp", 2),
        # text is reported once, by `numeric`, not also by the range check
        ("bad_text_timestamp.csv", "numeric", "timestamp", 4),
        ("bad_null_user.csv", "not_nullable", "user_id", 6),
        ("bad_duplicates.csv", "no_duplicate_events", None, 64),
    ],
)
def test_each_bad_case_names_check_column_rows(tmp_path, fixture, check, column, bad_row):
    with pytest.raises(DataValidationError) as excinfo:
        run(tmp_path, fixture)
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["passed"] is False
    matching = [f for f in report["failures"] if f["check"] == check and f["column"] == column]
    assert matching, report["failures"]
    failure = matching[0]
    assert failure["n_rows"] == 1
    assert failure["examples"][0]["row"] == bad_row
    assert check in str(excinfo.value)
    assert not (tmp_path / "validated.parquet").exists()  # nothing half-written


def test_missing_column_is_reported_by_its_name(tmp_path):
    with pytest.raises(DataValidationError, match="column 'timestamp' is missing") as excinfo:
        run(tmp_path, "bad_missing_column.csv", columns={})
    assert "ExposureSchema" not in str(excinfo.value)
    report = json.loads((tmp_path / "validation.json").read_text())
    (missing,) = [f for f in report["failures"] if f["check"] == "column_in_dataframe"]
    assert missing["column"] == "timestamp"
    # without the column the events are unknown: no duplicate report on top
    assert [f["check"] for f in report["failures"]] == ["column_in_dataframe"]


def test_mapped_column_the_file_lacks_is_named_at_ingest(tmp_path):
    with pytest.raises(SourceError, match=r"has no column \['timestamp'\]"):
        run(tmp_path, "bad_missing_column.csv")


def test_wrong_delimiter_says_which_separator_the_file_has(tmp_path):
    with pytest.raises(SourceError, match="comma-separated, not '::'-separated"):
        run(tmp_path, "ml1m_wrong_delimiter.dat", source="ml-1m")


def test_quarantine_moves_bad_rows_with_reason(tmp_path):
    report = run(tmp_path, "bad_rating_7.csv", on_error="quarantine", max_rejected_fraction=0.05)
    assert report["quarantine"]["rows"] == 1
    quarantined = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantined["reason"].iloc[0].startswith("in_range(1, 5) on rating")
    assert pd.read_parquet(tmp_path / "validated.parquet").shape[0] == 63


def test_quarantine_refuses_above_threshold(tmp_path):
    with pytest.raises(DataValidationError):
        run(tmp_path, "bad_rating_7.csv", on_error="quarantine", max_rejected_fraction=0.001)


def test_k_core_iterates_to_fixed_point():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c"],
            "item_id": ["x", "y", "x", "y", "x"],
            "timestamp": [1, 2, 3, 4, 5],
            "response": [1, 1, 1, 1, 1],
        }
    )
    # c has one positive -> removed; then x has 2 and y has 2: a 2-core remains
    kept = k_core(frame, 2)
    assert set(kept["user_id"]) == {"a", "b"}
    assert k_core(frame, 3).empty


def test_min_positives_after_k_core(tmp_path):
    with pytest.raises(DataValidationError, match="min_positives_per_user>=9"):
        run(tmp_path, "good.csv", min_positives_per_user=9)


# --- Validation never alters a value (issue 12) -------------------------------


def small_log(n_users=4, per_user=4) -> pd.DataFrame:
    rows = [
        (f"u{user}", f"i{event}", 1000 + 10 * event, 1, float(1 + event % 5))
        for user in range(n_users)
        for event in range(per_user)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "response", "rating"])


def validate_table(tmp_path, frame, suffix=".csv", separator=",", **validate_kwargs):
    """Write `frame` as a user's file, ingest it (source `table`) and validate it."""
    path = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep=separator)
    columns = {c: c for c in ["user_id", "item_id", "timestamp", "response", "rating"]}
    config = DataConfig(source="table", path=str(path), columns=columns, separator=separator)
    ingest(config, tmp_path / "raw.parquet")
    kwargs = {"k_core": 0, "min_positives_per_user": 1, **validate_kwargs}
    report = validate_exposures(
        tmp_path / "raw.parquet",
        tmp_path / "validated.parquet",
        tmp_path / "validation.json",
        ValidateConfig(**kwargs),
    )
    return report, pd.read_parquet(tmp_path / "validated.parquet")


def failures_of(tmp_path) -> dict:
    report = json.loads((tmp_path / "validation.json").read_text())
    return {(f["check"], f["column"]): f for f in report["failures"]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_fractions_are_rejected_not_truncated(tmp_path, suffix):
    frame = small_log().astype({"timestamp": float, "response": float})
    frame.loc[2, "response"] = 0.5
    frame.loc[5, "timestamp"] = 1234.5
    with pytest.raises(DataValidationError):
        validate_table(tmp_path, frame, suffix)
    failures = failures_of(tmp_path)
    response = failures[("isin([0, 1])", "response")]
    assert (response["n_rows"], response["examples"][0]["response"]) == (1, 0.5)
    timestamp = failures[("non_negative_integer", "timestamp")]
    assert (timestamp["n_rows"], timestamp["examples"][0]["timestamp"]) == (1, 1234.5)
    assert not (tmp_path / "validated.parquet").exists()


def test_float_timestamps_in_parquet_pass_only_when_whole(tmp_path):
    frame = small_log().astype({"timestamp": "float64", "response": "float64"})
    report, validated = validate_table(tmp_path, frame, ".parquet")
    # converted because nothing changes, and the report says so
    assert validated["timestamp"].dtype == "int64"
    assert validated["timestamp"].tolist() == frame["timestamp"].tolist()
    coerced = {c["column"]: c for c in report.to_dict()["coerced"]}
    assert coerced["timestamp"] == {
        "column": "timestamp",
        "from": "float64",
        "to": "int64",
        "count": len(frame),
    }
    assert coerced["response"]["from"] == "float64"
    assert "converted (lossless): timestamp float64 -> int64" in report.message()
    written = json.loads((tmp_path / "validation.json").read_text())
    assert written["coerced"] == report.to_dict()["coerced"]


def test_int32_timestamps_widen_and_are_reported(tmp_path):
    frame = small_log().astype({"timestamp": "int32"})
    report, validated = validate_table(tmp_path, frame, ".parquet")
    assert validated["timestamp"].dtype == "int64"
    assert {"column": "timestamp", "from": "int32", "to": "int64", "count": 16} in report.notes[
        "coerced"
    ]


def test_one_text_response_fails_one_row_and_can_be_quarantined(tmp_path):
    frame = small_log().astype({"response": object})
    frame.loc[6, "response"] = "clicked"
    with pytest.raises(DataValidationError):
        validate_table(tmp_path, frame)
    failures = failures_of(tmp_path)
    assert list(failures) == [("numeric", "response")]
    (failure,) = failures.values()
    assert failure["n_rows"] == 1
    assert failure["examples"][0]["row"] == 6
    assert failure["examples"][0]["response"] == "clicked"

    report, validated = validate_table(
        tmp_path, frame, on_error="quarantine", max_rejected_fraction=0.1
    )
    assert report.outcome == "quarantined"
    assert len(validated) == len(frame) - 1
    assert validated["response"].tolist() == [1] * (len(frame) - 1)
    quarantined = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantined["response"].tolist() == ["clicked"]
    assert quarantined["reason"].iloc[0] == "numeric on response"


def test_extra_columns_are_kept_and_listed(tmp_path):
    frame = small_log().assign(device=["phone", "tv"] * 8)
    report, validated = validate_table(tmp_path, frame)
    assert validated["device"].tolist() == frame["device"].tolist()
    assert report.to_dict()["extra_columns"] == ["device"]
    assert "kept unchecked (not used by mtrec): ['device']" in report.message()


def test_ids_are_kept_as_written(tmp_path):
    frame = small_log().assign(user_id=lambda f: "00" + f["user_id"].str[1:])
    _, validated = validate_table(tmp_path, frame)
    assert validated["user_id"].tolist() == frame["user_id"].tolist()  # "001", not "1"


@pytest.mark.parametrize(("separator", "label"), [(";", "semicolon"), ("\t", "tab")])
def test_file_with_another_separator_gets_a_hint(tmp_path, separator, label):
    frame = small_log()
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False, sep=separator)
    config = DataConfig(source="table", path=str(path), columns=IDENTITY)
    with pytest.raises(SourceError) as excinfo:
        ingest(config, tmp_path / "raw.parquet")
    message = str(excinfo.value)
    assert f"looks {label}-separated" in message
    assert "set data.separator" in message
    assert "duplicate" not in message
    # read with the right separator it passes
    validate_table(tmp_path, frame, separator=separator)


def test_one_column_table_at_validation_gets_a_separator_hint(tmp_path):
    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"user_id;item_id;timestamp;response": ["u;i;1;1"] * 3}).to_parquet(raw)
    with pytest.raises(DataValidationError) as excinfo:
        validate_exposures(
            raw, tmp_path / "v.parquet", tmp_path / "validation.json", ValidateConfig(k_core=0)
        )
    message = str(excinfo.value)
    assert "looks semicolon-separated" in message
    assert "no_duplicate_events" not in message
    report = json.loads((tmp_path / "validation.json").read_text())
    assert "data.separator" in report["hint"]
    assert {f["column"] for f in report["failures"]} == {
        "user_id",
        "item_id",
        "timestamp",
        "response",
    }


def test_lossy_conversion_is_not_done(tmp_path):
    # an int above 2**53 has no float64: true_reward stays as read, and its
    # dtype check fails instead of a rounded value passing
    frame = small_log().assign(true_reward=[0] * 15 + [2**53 + 1])
    raw = tmp_path / "raw.parquet"
    frame.to_parquet(raw)
    with pytest.raises(DataValidationError) as excinfo:
        validate_exposures(
            raw, tmp_path / "v.parquet", tmp_path / "validation.json", ValidateConfig(k_core=0)
        )
    assert "check \"dtype('float64')\" failed on column 'true_reward'" in str(excinfo.value)
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["coerced"] == []
