"""The exposure-log contract (pandera) and the validation report.

Validation is lazy: every check runs and every failure is collected, so one
report names all problems at once (check, column, number of rows, examples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

# Checks on whole rows; pandera reports them once per column, we report them once.
TABLE_CHECKS = ("no_duplicate_events", "not_empty", "min_positives_per_user")


class ExposureSchema(pa.DataFrameModel):
    """One row per exposure: a user was shown an item and responded (or not)."""

    user_id: Series[str] = pa.Field(nullable=False, coerce=True)
    item_id: Series[str] = pa.Field(nullable=False, coerce=True)
    # Integer seconds (or ms for KuaiRand) since the epoch; only order matters.
    timestamp: Series[int] = pa.Field(nullable=False, coerce=True)
    response: Series[int] = pa.Field(isin=[0, 1], nullable=False, coerce=True)
    # Satisfaction signals: evaluation only unless a param says otherwise.
    rating: Series[float] | None = pa.Field(
        in_range={"min_value": 1, "max_value": 5}, nullable=True, coerce=True
    )
    watch_ratio: Series[float] | None = pa.Field(ge=0, nullable=True, coerce=True)
    true_reward: Series[float] | None = pa.Field(nullable=True, coerce=True)

    @pa.check("timestamp", name="non_negative_integer", element_wise=False)
    def non_negative_integer(cls, values: Series) -> Series[bool]:
        # Works on the raw column too, so a bad value is reported even when
        # another row already made the dtype coercion fail.
        numeric = pd.to_numeric(values, errors="coerce")
        return numeric.notna() & (numeric >= 0) & (numeric % 1 == 0)

    @pa.dataframe_check(name="no_duplicate_events", element_wise=False)
    def no_duplicate_events(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame.duplicated(keep="first")

    @pa.dataframe_check(name="not_empty", element_wise=False)
    def not_empty(cls, frame: pd.DataFrame) -> bool:
        return len(frame) > 0

    class Config:
        strict = False  # extra columns are reported by the adapter, not fatal
        coerce = True


def min_positives_schema(minimum: int) -> pa.DataFrameSchema:
    """Every user keeps at least `minimum` positives (checked after k-core)."""

    def enough(frame: pd.DataFrame) -> pd.Series:
        per_user = frame.groupby("user_id")["response"].transform("sum")
        return per_user >= minimum

    return pa.DataFrameSchema(
        checks=[pa.Check(enough, name=f"min_positives_per_user>={minimum}", element_wise=False)]
    )


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
        return not self.failures

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
        if self.passed:
            return f"validation passed: {self.n_rows} rows"
        lines = [f"validation failed: {len(self.failures)} check(s) on {self.n_rows} rows"]
        for failure in self.failures:
            lines.append(f"  - {failure.describe()}")
            for example in failure.examples[:3]:
                lines.append(f"      e.g. {example}")
        return "\n".join(lines)


class DataValidationError(RuntimeError):
    def __init__(self, report: ValidationReport):
        super().__init__(report.message())
        self.report = report
