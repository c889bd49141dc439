"""Stage `validate`: check the raw exposure log, filter it to a k-core, and
stop with a readable report when anything is wrong.

The checks see the values the source read; the output differs from the input
only by the rows the report names (quarantined or k-core filtered) and by
lossless dtype conversions the report lists.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from mtrec.config import ValidateConfig
from mtrec.data.schema import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    TABLE_CHECKS,
    CheckFailure,
    DataValidationError,
    ExposureSchema,
    RawExposureSchema,
    ValidationReport,
    coerce_lossless,
    min_positives_schema,
    separator_hint,
)
from mtrec.data.stage_input import read_stage_input

log = logging.getLogger(__name__)


def check_exposures(frame: pd.DataFrame, schema: pa.DataFrameSchema, n_examples: int = 5):
    """Validate lazily; return (the frame or None, failures). Nothing is coerced."""
    try:
        return schema.validate(frame, lazy=True), []
    except SchemaErrors as errors:
        return None, _failures(frame, errors.failure_cases, n_examples)
    except SchemaError as error:  # non-lazy paths (e.g. a dataframe check that errors)
        return None, [CheckFailure(str(error.check), None, len(frame), [], False)]


def _failures(frame: pd.DataFrame, cases: pd.DataFrame, n_examples: int) -> list[CheckFailure]:
    failures = []
    cases = cases.copy()
    cases["column"] = cases["column"].where(cases["column"].notna(), None).astype(object)
    checks = cases["check"].astype(str)
    # pandera names the schema as the column of a missing column; the missing
    # column's name is the failure case.
    missing = checks == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"].astype(str)
    cases.loc[missing, "index"] = None
    table_level = checks.str.startswith(TABLE_CHECKS)
    cases.loc[table_level, "column"] = None
    cases = cases.drop_duplicates(subset=["check", "column", "index"])
    grouped = cases.groupby(["check", "column"], dropna=False, sort=False)
    for (check, column), group in grouped:
        column = (
            None if column is None or (isinstance(column, float) and np.isnan(column)) else column
        )
        index = [i for i in group["index"].tolist() if i is not None and not _isnan(i)]
        row_level = bool(index)
        if row_level:
            # Several failure cases may name the same row (e.g. a dataframe check).
            index = list(dict.fromkeys(int(i) for i in index))
            rows = frame.loc[frame.index.intersection(index[:n_examples])]
            examples = [
                {"row": int(i), **{k: _plain(v) for k, v in row.items()}}
                for i, row in rows.iterrows()
            ]
            n_rows = len(index)
        elif check == "column_in_dataframe":
            examples, n_rows = [], len(frame)
        else:
            examples = [{"failure_case": _plain(v)} for v in group["failure_case"].head(n_examples)]
            n_rows = len(frame)
        failures.append(CheckFailure(str(check), column, n_rows, examples, row_level, index))
    return failures


def _isnan(value) -> bool:
    return isinstance(value, float) and np.isnan(value)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or _isnan(value):
        return None
    if isinstance(value, bytes | bytearray):
        return repr(value)
    return value


def k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Keep users and items with at least k positives, iterated to a fixed point.
    Negative exposures of removed users/items go with them."""
    if k <= 0:
        return frame
    while True:
        positives = frame[frame["response"] == 1]
        user_counts = positives["user_id"].value_counts()
        item_counts = positives["item_id"].value_counts()
        keep = frame["user_id"].map(user_counts).fillna(0).ge(k) & frame["item_id"].map(
            item_counts
        ).fillna(0).ge(k)
        if keep.all():
            return frame
        frame = frame[keep]


def validate_exposures(
    raw_path: Path,
    out_path: Path,
    report_path: Path,
    config: ValidateConfig,
    quarantine_path: Path | None = None,
) -> ValidationReport:
    """Validate `raw_path`; write the clean, k-core filtered log to `out_path`.

    Raises DataValidationError (after writing the report) when a check fails
    and the policy does not allow continuing, StageInputError when `raw_path`
    is missing or unreadable. Nothing is dropped or changed silently: the
    report counts every removed row and why, every converted column, and
    every column kept unchecked.
    """
    frame = read_stage_input(raw_path, "mtrec ingest").reset_index(drop=True)
    attrs = dict(frame.attrs)
    report = ValidationReport(n_rows=len(frame))
    report.notes["extra_columns"] = [str(c) for c in frame.columns if c not in KNOWN_COLUMNS]
    validated, failures = check_exposures(frame, RawExposureSchema, config.n_examples)
    report.failures = failures
    quarantine_path = quarantine_path or out_path.with_name("quarantine.parquet")
    rejected = frame.iloc[:0].assign(reason=pd.Series(dtype=str))
    if failures:
        if not set(REQUIRED_COLUMNS) <= set(frame.columns):
            hint = separator_hint(frame.columns)
            if hint:
                report.notes["hint"] = f"{hint}: set data.separator to the file's separator"
        if not _may_quarantine(report, config):
            report.notes["policy"] = config.on_error
            report.write(report_path)
            raise DataValidationError(report)
        bad = report.bad_row_index()
        rejected = frame.loc[bad].copy()
        rejected["reason"] = [_reasons(report, i) for i in bad]
        validated = frame.drop(index=bad)
    # Only now, on values that passed every check, and only where nothing changes.
    validated, report.notes["coerced"] = coerce_lossless(validated)
    # Every check again, with the stored dtypes: fails on a dtype no lossless
    # conversion reaches (and would on a failing row quarantine missed).
    validated, failures = check_exposures(validated, ExposureSchema, config.n_examples)
    if failures:
        report.failures += failures
        report.write(report_path)
        raise DataValidationError(report)
    # Always written (empty when nothing was rejected) so the DVC output exists.
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    # As read; an object column is text for parquet, nulls stay null.
    for column in [c for c in rejected.columns if rejected[c].dtype == object]:
        rejected[column] = rejected[column].map(str, na_action="ignore").astype(object)
    rejected.to_parquet(quarantine_path, index=False)
    report.notes["quarantine"] = {"path": str(quarantine_path), "rows": len(rejected)}
    before = _counts(validated)
    filtered = k_core(validated, config.k_core)
    after = _counts(filtered)
    report.notes["k_core"] = {"k": config.k_core, "before": before, "after": after}
    filtered, failures = check_exposures(
        filtered, min_positives_schema(config.min_positives_per_user), config.n_examples
    )
    if failures:
        report.failures += failures
        report.notes["hint"] = "raise validate.k_core or lower validate.min_positives_per_user"
        report.write(report_path)
        raise DataValidationError(report)
    filtered = filtered.reset_index(drop=True)
    filtered.attrs.update(attrs)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    filtered.to_parquet(out_path)
    report.notes["output_rows"] = len(filtered)
    report.write(report_path)
    log.info(report.message())
    return report


def _may_quarantine(report: ValidationReport, config: ValidateConfig) -> bool:
    if config.on_error != "quarantine" or not report.only_row_level:
        return False
    fraction = len(report.bad_row_index()) / max(report.n_rows, 1)
    report.notes["rejected_fraction"] = fraction
    return fraction <= config.max_rejected_fraction


def _reasons(report: ValidationReport, label) -> str:
    return "; ".join(
        f"{f.check} on {f.column or 'table'}" for f in report.failures if label in set(f.index)
    )


def _counts(frame: pd.DataFrame) -> dict:
    return {
        "rows": int(len(frame)),
        "positives": int((frame["response"] == 1).sum()),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
    }
