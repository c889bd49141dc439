"""Stage `ingest`: read the configured source into the raw exposure table."""

from __future__ import annotations

import json
from pathlib import Path

from mtrec.config import DataConfig
from mtrec.data.schema import KNOWN_COLUMNS
from mtrec.data.sources import ATTR_LOGGED_NEGATIVES, ATTR_NOT_READ, ATTR_SIGNAL, read_source


def ingest(config: DataConfig, out_path: Path) -> dict:
    """Write the source's canonical (unvalidated) table to `out_path` (parquet,
    with the source's metadata kept in the file) and return a summary."""
    frame = read_source(config)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    summary = {
        "source": config.source,
        "rows": int(len(frame)),
        "columns": [str(c) for c in frame.columns],
        ATTR_LOGGED_NEGATIVES: bool(frame.attrs.get(ATTR_LOGGED_NEGATIVES)),
        ATTR_SIGNAL: frame.attrs.get(ATTR_SIGNAL),
        # Kept in the table; validation lists them, nothing checks or uses them.
        "extra_columns": [str(c) for c in frame.columns if c not in KNOWN_COLUMNS],
        # Left out of the table by the source (JSON-lines fields such as review text).
        ATTR_NOT_READ: list(frame.attrs.get(ATTR_NOT_READ, [])),
    }
    out_path.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
