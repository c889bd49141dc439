"""The exposure-log contract (pandera) and the validation report.

Validation never changes a value. The checks run on the raw values as the
source read them (a response of 0.5 is a failure, not a 0); only afterwards is
a column converted to the dtype it is stored with, and only where that is
lossless (1.0 -> 1, int32 -> int64, "17" -> 17); the report lists every such
conversion. A column that cannot be converted losslessly fails its dtype check.

Validation is lazy: every check runs and every failure is collected, so one
report names all problems at once (check, column, number of rows, examples).
Each value check fails only the rows that break it: a text value in a numeric
column fails `numeric` on that row, and the range checks skip it.

Columns other than the canonical ones and the satisfaction signals are kept
as they are, unchecked, and the report lists them (`extra_columns`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp", "response")
SIGNAL_COLUMNS = ("rating", "watch_ratio", "true_reward")
KNOWN_COLUMNS = REQUIRED_COLUMNS + SIGNAL_COLUMNS

# The dtype each column is stored with once validated. Timestamps are integer
# seconds (or ms for KuaiRand) since the epoch; only their order matters.
STORED_DTYPES = {
    "user_id": "str",
    "item_id": "str",
    "timestamp": "int64",
    "response": "int64",
    "rating": "float64",
    "watch_ratio": "float64",
    "true_reward": "float64",
}

# Checks on whole rows; pandera reports them once per column, we report them once.
TABLE_CHECKS = ("no_duplicate_events", "not_empty", "min_positives_per_user")

# Separators a file may use; a header read as one column holding one of them
# means the file was read with the wrong one.
SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def as_number(values: pd.Series) -> pd.Series:
    """The numeric value of each cell; NaN where a cell is null or not a number
    (text). Numeric columns are returned as they are (no float round trip)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    if pd.api.types.is_numeric_dtype(values):
        return values
    return pd.to_numeric(values, errors="coerce")


def _numeric(values: pd.Series) -> pd.Series:
    return as_number(values).notna() | values.isna()


def _non_negative_integer(values: pd.Series) -> pd.Series:
    number = as_number(values)
    return number.isna() | ((number >= 0) & (number % 1 == 0))


def _response_01(values: pd.Series) -> pd.Series:
    number = as_number(values)
    return number.isna() | number.isin([0, 1])


def _rating_range(values: pd.Series) -> pd.Series:
    number = as_number(values)
    return number.isna() | number.between(1, 5)


def _non_negative(values: pd.Series) -> pd.Series:
    number = as_number(values)
    return number.isna() | (number >= 0)


def _check(function, name: str) -> pa.Check:
    # Text cells are NaN to the value checks, which pass them: `numeric` alone
    # reports a text cell, once.
    return pa.Check(function, name=name, element_wise=False)


NUMERIC = _check(_numeric, "numeric")
VALUE_CHECKS: dict[str, list[pa.Check]] = {
    "user_id": [],
    "item_id": [],
    "timestamp": [NUMERIC, _check(_non_negative_integer, "non_negative_integer")],
    "response": [NUMERIC, _check(_response_01, "isin([0, 1])")],
    # Satisfaction signals: evaluation only unless a param says otherwise.
    "rating": [NUMERIC, _check(_rating_range, "in_range(1, 5)")],
    "watch_ratio": [NUMERIC, _check(_non_negative, "greater_than_or_equal_to(0)")],
    "true_reward": [NUMERIC],
}


def _no_duplicate_events(frame: pd.DataFrame) -> pd.Series:
    # An event is its canonical columns and signals; extra columns do not make
    # two identical events different. Without every required column the events
    # are not known, and the missing column is what the report names.
    if not set(REQUIRED_COLUMNS) <= set(frame.columns):
        return pd.Series(True, index=frame.index)
    known = [c for c in KNOWN_COLUMNS if c in frame.columns]
    return ~frame[known].duplicated(keep="first")


def exposure_schema(stored_dtypes: bool) -> pa.DataFrameSchema:
    """One row per exposure: a user was shown an item and responded (or not).

    `stored_dtypes=False` checks the raw values whatever their dtype;
    `stored_dtypes=True` also requires the dtypes data/validated/ holds. Neither
    coerces anything.
    """
    columns = {
        name: pa.Column(
            STORED_DTYPES[name] if stored_dtypes else None,
            checks=VALUE_CHECKS[name],
            nullable=name not in REQUIRED_COLUMNS,
            required=name in REQUIRED_COLUMNS,
            coerce=False,
        )
        for name in KNOWN_COLUMNS
    }
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(_no_duplicate_events, name="no_duplicate_events", element_wise=False),
            pa.Check(lambda frame: len(frame) > 0, name="not_empty", element_wise=False),
        ],
        strict=False,  # extra columns are kept, unchecked, and listed in the report
        coerce=False,
        name="exposures",
    )


RawExposureSchema = exposure_schema(stored_dtypes=False)
# What data/validated/ holds (and what a source may already produce).
ExposureSchema = exposure_schema(stored_dtypes=True)


def min_positives_schema(minimum: int) -> pa.DataFrameSchema:
    """Every user keeps at least `minimum` positives (checked after k-core)."""

    def enough(frame: pd.DataFrame) -> pd.Series:
        per_user = frame.groupby("user_id")["response"].transform("sum")
        return per_user >= minimum

    return pa.DataFrameSchema(
        checks=[pa.Check(enough, name=f"min_positives_per_user>={minimum}", element_wise=False)]
    )


def value_types(values: pd.Series) -> str:
    """A column's dtype, and for object columns the Python types in it."""
    if values.dtype != object:
        return str(values.dtype)
    types = sorted({type(v).__name__ for v in values.dropna()})
    return f"object[{', '.join(types)}]"


def coerce_lossless(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Convert the known columns to their stored dtypes where no value changes.

    Returns the converted frame and one record per converted column (column,
    from, to, count of values converted). A column whose conversion would lose
    anything (a null in an int column, 0.5 to int, an int above 2**53 to float)
    is left as it is, and the stored-dtype check then names it.
    """
    frame = frame.copy()
    coerced = []
    for column, dtype in STORED_DTYPES.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if _has_dtype(values, dtype):
            continue
        converted = _convert(values, dtype)
        if converted is None:
            continue
        frame[column] = converted
        coerced.append(
            {
                "column": column,
                "from": value_types(values),
                "to": dtype,
                "count": int(values.notna().sum()),
            }
        )
    return frame, coerced


def _has_dtype(values: pd.Series, dtype: str) -> bool:
    if dtype == "str":
        if pd.api.types.is_string_dtype(values) and values.dtype != object:
            return True
        return values.dtype == object and all(isinstance(v, str) for v in values.dropna())
    return str(values.dtype) == dtype


def _convert(values: pd.Series, dtype: str) -> pd.Series | None:
    if dtype == "str":
        # str() of an int or a float is exact (repr round trip); bytes are not text.
        if any(isinstance(v, bytes | bytearray) for v in values.dropna()):
            return None
        return values.map(str, na_action="ignore").astype(object)
    number = as_number(values)
    if number.isna().sum() != values.isna().sum():
        return None  # text that is not a number
    if dtype == "int64":
        if _is_int(number):
            fits = number.dtype != "uint64" or (number <= np.iinfo(np.int64).max).all()
        else:  # whole, finite (so not null) and in range
            fits = (np.isfinite(number) & (number % 1 == 0) & (number.abs() < 2**63)).all()
        return number.astype("int64") if fits else None
    if dtype == "float64":
        if _is_int(number) and (number.abs() > 2**53).any():
            return None  # not every such int is a float64
        return number.astype("float64")
    return None


def _is_int(values: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values)


def separator_hint(
    columns, separator: str | None = None, what: str = "the header was"
) -> str | None:
    """A hint when a table's only column (its header, or `what` else) holds a
    separator: the file was read with the wrong separator."""
    if len(columns) != 1:
        return None
    header = str(columns[0])
    for candidate, label in SEPARATORS.items():
        if candidate != separator and candidate in header:
            return (
                f"{what} read as one column {header!r}, which contains "
                f"{label}s ({candidate!r}): the file looks {label}-separated"
            )
    return None


@dataclass
class CheckFailure:
    check: str
    column: str | None
    n_rows: int
    examples: list[dict]
    row_level: bool
    # Index labels of the failing rows (kept out of the JSON report).
    index: list = field(default_factory=list, repr=False)

    def describe(self) -> str:
        if self.check == "column_in_dataframe":
            return f"column {self.column!r} is missing"
        where = f"column {self.column!r}" if self.column else "table"
        rows = f"{self.n_rows} row(s)" if self.row_level else "the whole column/table"
        return f"check {self.check!r} failed on {where}: {rows}"


@dataclass
class ValidationReport:
    n_rows: int
    failures: list[CheckFailure] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every raw row passed every check."""
        return not self.failures

    @property
    def outcome(self) -> str:
        """passed | quarantined (failing rows moved aside, the rest written) | failed."""
        if self.passed:
            return "passed"
        if self.notes.get("output_rows") is not None:
            return "quarantined"
        return "failed"

    def bad_row_index(self) -> pd.Index:
        """Index labels of rows named by row-level failures."""
        labels: set = set()
        for failure in self.failures:
            labels.update(failure.index)
        return pd.Index(sorted(labels))

    @property
    def only_row_level(self) -> bool:
        return all(f.row_level for f in self.failures)

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "outcome": self.outcome,
            "n_rows": self.n_rows,
            "failures": [
                {k: v for k, v in f.__dict__.items() if k != "index"} for f in self.failures
            ],
            **self.notes,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def message(self) -> str:
        outcome = self.outcome
        if outcome == "passed":
            lines = [f"validation passed: {self.n_rows} rows"]
        elif outcome == "quarantined":
            quarantine = self.notes["quarantine"]
            lines = [
                f"validation passed after quarantine: {quarantine['rows']} of {self.n_rows} "
                f"rows moved to {quarantine['path']}, {self.notes['output_rows']} rows written; "
                f"the quarantined rows failed:"
            ]
        else:
            lines = [f"validation failed: {len(self.failures)} check(s) on {self.n_rows} rows"]
        for failure in self.failures:
            lines.append(f"  - {failure.describe()}")
            for example in failure.examples[:3]:
                lines.append(f"      e.g. {example}")
        if self.notes.get("hint"):
            lines.append(f"  hint: {self.notes['hint']}")
        for record in self.notes.get("coerced", []):
            lines.append(
                f"  converted (lossless): {record['column']} {record['from']} -> "
                f"{record['to']} ({record['count']} values)"
            )
        if self.notes.get("extra_columns"):
            lines.append(f"  kept unchecked (not used by mtrec): {self.notes['extra_columns']}")
        return "\n".join(lines)


class DataValidationError(RuntimeError):
    def __init__(self, report: ValidationReport):
        super().__init__(report.message())
        self.report = report
