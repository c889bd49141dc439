"""Helpers shared by test modules (`from helpers import ...`: pytest puts
tests/ on sys.path).

Tests that start a real server on loopback use the helpers the benchmarks
use for the same job (benchmarks/common.py). `benchmarks/` goes on sys.path
here, so the benchmark scripts, which import their sibling `common`, load in
tests as they do when run as files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

from common import free_port, stop_process, wait_for_http  # noqa: E402

__all__ = ["BENCHMARKS", "free_port", "stop_process", "wait_ready"]


def wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Fail the test (with the server's log) unless GET `url` answers 200 in time."""
    try:
        wait_for_http(url, process, log, seconds)
    except RuntimeError as error:
        pytest.fail(str(error))
