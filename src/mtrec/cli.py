"""The `mtrec` command: one subcommand per pipeline step (what dvc.yaml runs).

Each subcommand reads params.yaml once into typed configs and calls the one
library function that implements the step; no step logic lives here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from mtrec.config import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="params.yaml to read")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def ingest(params: Path = PARAMS) -> None:
    """Read the configured data source into data/raw/exposures.parquet."""
    from mtrec.data.ingest import ingest as run
    from mtrec.data.sources import SourceError

    _setup_logging()
    p = load_params(params)
    try:
        summary = run(p.data, p.paths.raw)
    except SourceError as exc:
        _fail(f"ingest failed: {exc}")
    typer.echo(f"ingest: {summary['rows']} rows from {summary['source']} -> {p.paths.raw}")


@app.command()
def validate(params: Path = PARAMS) -> None:
    """Validate the raw log (pandera), k-core filter it, write data/validated/."""
    from mtrec.data.schema import DataValidationError
    from mtrec.data.validate import validate_exposures

    _setup_logging()
    p = load_params(params)
    report_path = p.paths.reports / "validation.json"
    try:
        report = validate_exposures(
            p.paths.raw, p.paths.validated, report_path, p.validate_, p.paths.quarantine
        )
    except DataValidationError as exc:
        _fail(f"{exc}\nfull report: {report_path}")
    typer.echo(report.message())
    typer.echo(f"k-core: {json.dumps(report.notes['k_core'])}")


@app.command()
def split(params: Path = PARAMS) -> None:
    """Add negative exposures where none were logged and split train/valid/test."""
    from mtrec.data.split import split_exposures

    _setup_logging()
    p = load_params(params)
    meta = split_exposures(p.paths.validated, p.paths.processed, p.split)
    typer.echo(f"split: {json.dumps(meta['rows'])} -> {p.paths.processed}")


def main() -> None:  # pragma: no cover - console entry
    app()
