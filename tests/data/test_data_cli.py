"""The data commands through the real CLI: a person sees one clear line and a
non-zero exit, never a traceback (issue 12)."""

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mtrec.cli import app

COLUMNS = ["user_id", "item_id", "timestamp", "response"]


def write_params(tmp_path, data_path=None, **validate):
    params = {
        "data": {"source": "table", "path": str(data_path), "columns": {c: c for c in COLUMNS}},
        "validate": {"k_core": 0, "min_positives_per_user": 1, **validate},
        "split": {"n_negatives": 1},
        "paths": {
            "raw": str(tmp_path / "raw" / "exposures.parquet"),
            "validated": str(tmp_path / "validated" / "exposures.parquet"),
            "quarantine": str(tmp_path / "validated" / "quarantine.parquet"),
            "processed": str(tmp_path / "processed"),
            "reports": str(tmp_path / "reports"),
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_failure(result, code, *phrases):
    """Exit `code`, every phrase on one line of the output, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught error
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if all(p in line for p in phrases)]
    assert len(lines) == 1, result.output


def log_csv(tmp_path, rows=12) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i % 3}" for i in range(rows)],
            "item_id": [f"i{i}" for i in range(rows)],
            "timestamp": range(1000, 1000 + rows),
            "response": 1,
        }
    )
    frame.to_csv(tmp_path / "log.csv", index=False)
    return frame


def test_non_utf8_file_is_one_clear_line(tmp_path):
    log_csv(tmp_path)
    text = (tmp_path / "log.csv").read_bytes().replace(b"i4,", b"caf\xe9,")
    (tmp_path / "log.csv").write_bytes(text)
    params = write_params(tmp_path, tmp_path / "log.csv")
    result = invoke("ingest", "-p", params)
    assert_clean_failure(
        result, 1, "ingest failed", "not utf-8 text", "byte 0xe9", "line 6, column 'item_id'"
    )


@pytest.mark.parametrize(
    ("command", "missing", "made_by"),
    [("validate", "raw", "mtrec ingest"), ("split", "validated", "mtrec validate")],
)
def test_missing_stage_input_is_one_clear_line(tmp_path, command, missing, made_by):
    params = write_params(tmp_path, tmp_path / "log.csv")
    result = invoke(command, "-p", params)
    assert_clean_failure(
        result, 1, f"{command} failed", f"{missing}/exposures.parquet not found", made_by
    )


def test_unreadable_stage_input_is_one_clear_line(tmp_path):
    params = write_params(tmp_path, tmp_path / "log.csv")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "exposures.parquet").write_text("user_id,item_id\n")
    result = invoke("validate", "-p", params)
    assert_clean_failure(result, 1, "validate failed", "is not a readable parquet file")


@pytest.mark.parametrize("command", ["ingest", "validate", "split", "evaluate"])
def test_params_file_that_does_not_exist_is_an_error(tmp_path, command):
    result = invoke(command, "-p", tmp_path / "nope.yaml")
    assert_clean_failure(result, 2, "params file", "nope.yaml not found")
    assert not (tmp_path / "reports").exists()


def test_without_p_a_missing_params_yaml_still_means_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("split")
    # the defaults' input path, not a complaint about params.yaml
    assert_clean_failure(result, 1, "split failed", "data/validated/exposures.parquet not found")


def test_successful_quarantine_says_what_it_moved(tmp_path):
    frame = log_csv(tmp_path)
    frame.astype({"response": object}).assign(
        response=lambda f: f["response"].where(f.index != 4, "yes")
    ).to_csv(tmp_path / "log.csv", index=False)
    params = write_params(
        tmp_path, tmp_path / "log.csv", on_error="quarantine", max_rejected_fraction=0.1
    )
    assert invoke("ingest", "-p", params).exit_code == 0
    result = invoke("validate", "-p", params)
    assert result.exit_code == 0, result.output
    assert "validation failed" not in result.output
    assert "validation passed after quarantine: 1 of 12 rows moved to" in result.output
    assert "check 'numeric' failed on column 'response': 1 row(s)" in result.output
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["outcome"] == "quarantined"
    assert report["quarantine"]["rows"] == 1
    assert report["output_rows"] == 11


def test_positive_only_table_through_the_cli_samples_negatives(tmp_path):
    log_csv(tmp_path)
    params = write_params(tmp_path, tmp_path / "log.csv")
    ingested = invoke("ingest", "-p", params)
    assert "no logged negatives" in ingested.output
    assert invoke("validate", "-p", params).exit_code == 0
    result = invoke("split", "-p", params)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "processed" / "meta.json").read_text())
    assert meta["sampled_negatives_per_positive"] == 1
