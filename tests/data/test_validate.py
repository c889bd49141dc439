import json
from pathlib import Path

import pandas as pd
import pytest

from mtrec.config import DataConfig, ValidateConfig
from mtrec.data.ingest import ingest
from mtrec.data.schema import DataValidationError
from mtrec.data.validate import k_core, validate_exposures

FIXTURES = Path(__file__).parents[1] / "fixtures"
IDENTITY = {c: c for c in ["user_id", "item_id", "timestamp", "response", "rating"]}


def run(tmp_path, fixture, source="table", **validate_kwargs):
    config = DataConfig(source=source, path=str(FIXTURES / fixture), columns=IDENTITY)
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
        ("bad_text_timestamp.csv", "non_negative_integer", "timestamp", 4),
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


def test_missing_column_is_reported(tmp_path):
    with pytest.raises(DataValidationError, match="column_in_dataframe"):
        run(tmp_path, "bad_missing_column.csv")
    report = json.loads((tmp_path / "validation.json").read_text())
    assert any("timestamp" in json.dumps(f) for f in report["failures"])


def test_wrong_delimiter_is_reported_as_missing_columns(tmp_path):
    with pytest.raises(DataValidationError, match="column_in_dataframe"):
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
