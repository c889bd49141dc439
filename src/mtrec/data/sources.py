"""Sources: each turns one dataset format into the canonical exposure table.

The canonical table has `user_id`, `item_id` (strings), `timestamp`, `response`
(0/1) and, where the dataset has them, the satisfaction signals `rating`,
`watch_ratio`, `true_reward`. Adapters rename and derive columns but do not
coerce or drop anything: malformed values reach the validation stage intact so
its report can name them, and a file's other columns are kept (after the
canonical ones) for the validation report to list. The one exception is a
JSON-lines review dump, whose other fields (review text, images) are left out
and named in `columns_not_read`.
"""

from __future__ import annotations

import codecs
import glob
import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec.config import DataConfig
from mtrec.data.schema import SEPARATORS, as_number, separator_hint

CANONICAL = ["user_id", "item_id", "timestamp", "response"]
SIGNALS = ["rating", "watch_ratio", "true_reward"]

# Metadata a source attaches to its table (DataFrame.attrs): whether negatives
# were logged (else the split stage samples them) and which satisfaction signal
# the evaluation should use.
ATTR_LOGGED_NEGATIVES = "has_logged_negatives"
ATTR_SIGNAL = "satisfaction_signal"
# Fields of the input a source left out of the table (JSON lines only), by name.
ATTR_NOT_READ = "columns_not_read"


class SourceError(RuntimeError):
    """A source cannot be read at all (file missing, empty, unknown format)."""


SourceReader = Callable[[DataConfig], pd.DataFrame]
_SOURCES: dict[str, SourceReader] = {}


def register_source(name: str) -> Callable[[SourceReader], SourceReader]:
    def decorator(reader: SourceReader) -> SourceReader:
        _SOURCES[name] = reader
        return reader

    return decorator


def read_source(config: DataConfig) -> pd.DataFrame:
    """Read the configured source into the canonical (not yet validated) table."""
    if config.source == "synthetic" and "synthetic" not in _SOURCES:
        # The simulator registers itself on import; import lazily so the data
        # package does not depend on it.
        import mtrec.simulator.source  # noqa: F401
    try:
        reader = _SOURCES[config.source]
    except KeyError as exc:
        raise SourceError(
            f"unknown data.source {config.source!r}; known: {sorted(_SOURCES)}"
        ) from exc
    frame = reader(config)
    frame.attrs.setdefault(ATTR_LOGGED_NEGATIVES, False)
    frame.attrs.setdefault(ATTR_SIGNAL, None)
    return _stringify_ids(frame)


def _stringify_ids(frame: pd.DataFrame) -> pd.DataFrame:
    attrs = dict(frame.attrs)
    for column in ("user_id", "item_id"):
        if column in frame.columns:
            values = frame[column]
            frame[column] = values.where(values.isna(), values.astype(str)).astype(object)
    # Columns of mixed python objects (e.g. a timestamp column holding text) are
    # stored as text so parquet can hold them; validation reports the bad values.
    for column in frame.columns:
        if frame[column].dtype == object and column not in ("user_id", "item_id"):
            values = frame[column]
            frame[column] = values.where(values.isna(), values.astype(str)).astype(object)
    frame.attrs.update(attrs)
    return frame


def _require_path(config: DataConfig, hint: str) -> list[Path]:
    if not config.path:
        raise SourceError(f"data.source {config.source!r} needs data.path: {hint}")
    matches = (
        sorted(glob.glob(config.path)) if any(c in config.path for c in "*?[") else [config.path]
    )
    paths = [Path(p) for p in matches]
    missing = [str(p) for p in paths if not p.exists()]
    if not paths or missing:
        raise SourceError(f"data.path {config.path!r} not found ({hint})")
    for path in paths:
        if path.stat().st_size == 0:
            raise SourceError(f"{path} is empty: no interactions to read")
    return paths


def _read_csv(path: Path, separator_fix: str = "convert the file", **kwargs) -> pd.DataFrame:
    """pandas.read_csv with errors a person can act on. `separator_fix` says
    what to do when the separator looks wrong."""
    separator = kwargs.get("sep", ",")
    try:
        raw = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path} is empty: no interactions to read") from exc
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path} could not be parsed as delimited text: {exc}") from exc
    except UnicodeDecodeError as exc:
        encoding = kwargs.get("encoding", "utf-8")
        raise SourceError(
            _decode_error(path, encoding, separator, kwargs.get("header", "infer"))
        ) from exc
    if raw.shape[1] == 1:
        if kwargs.get("header", "infer") is None:
            # No header: look at the first line's one field instead.
            first = [raw.iloc[0, 0]] if len(raw) else []
            hint = separator_hint(first, separator, what="each line was")
        else:
            hint = separator_hint(raw.columns, separator)
        if hint:
            expected = SEPARATORS.get(separator, repr(separator))
            raise SourceError(f"{path}: {hint}, not {expected}-separated ({separator_fix})")
    return raw


def _decode_error(path: Path, encoding: str, separator: str, header) -> str:
    """Where in `path` the first byte that is not `encoding` text is: line, and
    column when the header names it."""
    data = path.read_bytes()
    try:
        codecs.decode(data, encoding)
    except UnicodeDecodeError as exc:
        start = exc.start
    else:  # the reader saw something else (e.g. a compressed file)
        return f"{path} is not {encoding} text: convert it to {encoding}"
    line_start = data.rfind(b"\n", 0, start) + 1
    line_number = data.count(b"\n", 0, start) + 1
    field_index = data[line_start:start].count(separator.encode())
    where = f"line {line_number}"
    if header is not None and line_number > 1:
        names = data[: data.find(b"\n")].decode(encoding, errors="replace").rstrip("\r")
        names = names.split(separator)
        if field_index < len(names):
            where += f", column {names[field_index].strip()!r}"
    return (
        f"{path} is not {encoding} text: byte 0x{data[start]:02x} at {where}; "
        f"convert the file to {encoding} (e.g. `iconv -f latin1 -t utf-8`)"
    )


def recbole_ml100k_dir() -> Path:
    """The ML-100k copy shipped inside the `recbole` distribution."""
    hint = "install it with `pip install --no-deps recbole==1.2.1` (see README)"
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError as exc:
        raise SourceError(
            f"ML-100k is read from the recbole package, which is missing: {hint}"
        ) from exc
    folder = Path(str(dist.locate_file("recbole/dataset_example/ml-100k")))
    if not (folder / "ml-100k.inter").exists():
        raise SourceError(f"recbole is installed but {folder}/ml-100k.inter is missing: {hint}")
    return folder


@register_source("ml-100k")
def read_ml100k(config: DataConfig) -> pd.DataFrame:
    path = Path(config.path) if config.path else recbole_ml100k_dir() / "ml-100k.inter"
    raw = _read_csv(path, sep="\t")
    # RecBole atomic files name columns "name:type".
    raw.columns = [str(c).split(":")[0] for c in raw.columns]
    frame = raw.rename(columns={})
    frame["response"] = 1
    frame.attrs[ATTR_SIGNAL] = "rating"
    return _ordered(frame)


@register_source("ml-1m")
def read_ml1m(config: DataConfig) -> pd.DataFrame:
    (path,) = _require_path(config, "MovieLens-1M ratings.dat (UserID::MovieID::Rating::Timestamp)")
    raw = _read_csv(
        path,
        "ratings.dat is '::'-separated",
        sep="::",
        engine="python",
        header=None,
        encoding="latin-1",
    )
    if raw.shape[1] == 4:
        raw.columns = ["user_id", "item_id", "rating", "timestamp"]
    else:
        raw.columns = [f"field_{i}" for i in range(raw.shape[1])]
    raw["response"] = 1
    raw.attrs[ATTR_SIGNAL] = "rating"
    return _ordered(raw)


@register_source("kuairand")
def read_kuairand(config: DataConfig) -> pd.DataFrame:
    paths = _require_path(config, "KuaiRand-Pure log_standard_*.csv (a glob is fine)")
    raw = pd.concat(
        [_read_csv(p, "KuaiRand's logs are comma-separated") for p in paths], ignore_index=True
    )
    frame = raw.rename(
        columns={"video_id": "item_id", "time_ms": "timestamp", "is_click": "response"}
    )
    milliseconds = pd.to_numeric(frame["timestamp"], errors="coerce")
    if milliseconds.notna().all():
        # The canonical unit is seconds (session gaps, the reward's episodes). Rows go
        # in millisecond order first: the split breaks ties of whole seconds by row
        # order, so exposures within one second keep their order. A column that is not
        # all numbers is left as it is, for validation to name the bad rows.
        order = np.argsort(milliseconds.to_numpy(), kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        frame["timestamp"] = (milliseconds.to_numpy()[order] // 1000).astype(np.int64)
    if {"play_time_ms", "duration_ms"} <= set(frame.columns):
        play = pd.to_numeric(frame["play_time_ms"], errors="coerce")
        duration = pd.to_numeric(frame["duration_ms"], errors="coerce")
        # A zero-length video has no meaningful ratio.
        frame["watch_ratio"] = (play / duration.where(duration > 0)).astype(float)
    frame.attrs[ATTR_LOGGED_NEGATIVES] = True
    frame.attrs[ATTR_SIGNAL] = "watch_ratio"
    return _ordered(frame)


_AMAZON_KEYS = [
    # 2023 release
    {"user_id": "user_id", "parent_asin": "item_id", "rating": "rating", "timestamp": "timestamp"},
    # 2014/2018 releases
    {
        "reviewerID": "user_id",
        "asin": "item_id",
        "overall": "rating",
        "unixReviewTime": "timestamp",
    },
]


@register_source("amazon")
def read_amazon(config: DataConfig) -> pd.DataFrame:
    (path,) = _require_path(
        config, "Amazon reviews: ratings CSV (user,item,rating,timestamp) or JSON lines"
    )
    fmt = config.format
    if fmt == "auto":
        fmt = (
            "jsonl"
            if path.suffix in {".json", ".jsonl"} or path.name.endswith(".jsonl.gz")
            else "csv"
        )
    if fmt == "csv":
        raw = _read_csv(path, header=None)
        if raw.shape[1] == 4:
            raw.columns = ["user_id", "item_id", "rating", "timestamp"]
        else:
            raw.columns = [f"field_{i}" for i in range(raw.shape[1])]
    else:
        records = []
        with open(path, "rb") as fh:
            for line_number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line.decode("utf-8")))
                except UnicodeDecodeError as exc:
                    raise SourceError(
                        f"{path}:{line_number} is not utf-8 text (byte "
                        f"0x{line[exc.start]:02x}); convert the file to utf-8"
                    ) from exc
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}:{line_number} is not valid JSON: {exc.msg}") from exc
        if not records:
            raise SourceError(f"{path} is empty: no interactions to read")
        raw = pd.DataFrame.from_records(records)
        for mapping in _AMAZON_KEYS:
            if set(mapping) <= set(raw.columns):
                not_read = sorted(str(c) for c in raw.columns if c not in mapping)
                raw = raw[list(mapping)].rename(columns=mapping)
                # Review text and images are not interactions; say which were left out.
                raw.attrs[ATTR_NOT_READ] = not_read
                break
        if "timestamp" in raw.columns and _looks_like_milliseconds(raw["timestamp"]):
            raw["timestamp"] = pd.to_numeric(raw["timestamp"]) // 1000
    raw["response"] = 1
    raw.attrs[ATTR_SIGNAL] = "rating"
    return _ordered(raw)


def _looks_like_milliseconds(values: pd.Series) -> bool:
    numeric = pd.to_numeric(values, errors="coerce")
    return bool(numeric.notna().all() and numeric.median() > 1e11)


@register_source("table")
def read_table(config: DataConfig) -> pd.DataFrame:
    """Generic CSV/parquet with a column mapping (canonical name -> file column)."""
    (path,) = _require_path(config, "a CSV or parquet file; map its columns in data.columns")
    mapping = {v: k for k, v in config.columns.items()}
    if path.suffix == ".parquet":
        try:
            raw = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise SourceError(f"{path} is not a readable parquet file: {exc}") from exc
    else:
        # Ids are labels: read as text so "007" stays "007".
        id_columns = {config.columns.get(name, name): str for name in ("user_id", "item_id")}
        raw = _read_csv(path, "set data.separator", sep=config.separator, dtype=id_columns)
    absent = {k: v for k, v in config.columns.items() if v not in raw.columns}
    if absent:
        # A mapped column that is not there would otherwise vanish quietly (an
        # absent response column even turns the log into positives only).
        raise SourceError(
            f"{path} has no column {sorted(absent.values())} (data.columns maps "
            f"{sorted(absent)} to it); its columns: {[str(c) for c in raw.columns]}"
        )
    frame = raw.rename(columns=mapping)
    clashes = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if clashes:
        raise SourceError(
            f"{path}: data.columns maps a column onto {clashes}, which the file also has; "
            "map or rename one of them"
        )
    if "response" not in frame.columns:
        frame["response"] = 1
    else:
        # A response column of 1s only is a positive-only log, not one with
        # logged negatives: the split stage must sample its negatives.
        frame.attrs[ATTR_LOGGED_NEGATIVES] = bool((as_number(frame["response"]) == 0).any())
    signal = next((s for s in SIGNALS if s in frame.columns), None)
    frame.attrs[ATTR_SIGNAL] = signal
    return _ordered(frame)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns first, then signals, then the file's other columns
    (kept: validation lists them, the split stage does not use them)."""
    known = [c for c in CANONICAL + SIGNALS if c in frame.columns]
    others = [c for c in frame.columns if c not in known]
    attrs = dict(frame.attrs)
    out = frame[known + others].copy()
    out.attrs.update(attrs)
    return out
