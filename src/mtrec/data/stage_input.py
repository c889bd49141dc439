"""Reading a data stage's input file, with an error a person can act on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


class StageInputError(RuntimeError):
    """A stage's input file is missing or is not a table."""


def read_stage_input(path: Path, made_by: str) -> pd.DataFrame:
    """Read the parquet table a previous stage (`made_by`) wrote."""
    path = Path(path)
    if not path.exists():
        raise StageInputError(
            f"{path} not found: it is written by `{made_by}`; run that first (or `dvc repro`)"
        )
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageInputError(f"{path} is not a readable parquet file: {reason}") from exc
