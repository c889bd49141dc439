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


def gate_candidate(
    backbone: str,
    guidance: str,
    ranks_by_seed: dict,
    satisfied=None,
    extra_by_seed: dict | None = None,
    model_dirs: dict | None = None,
    ks: tuple[int, ...] = (10,),
) -> dict:
    """A `reports/metrics.json` candidate entry as `mtrec evaluate` writes it, with
    validation evidence computed from per-user ranks of the held-out positives
    (`ranks_by_seed`: {seed: [rank per user]}; `satisfied`: [1.0/0.0 per user],
    default alternating). The test block repeats the validation metrics.
    `extra_by_seed`: {seed: {metric: value}} added to both (e.g. AUC)."""
    import numpy as np

    from mtrec.evaluation.metrics import ranking_metrics, satisfaction_split
    from mtrec.evaluation.stats import aggregate_seeds

    n_users = len(next(iter(ranks_by_seed.values())))
    if satisfied is None:
        satisfied = [float(u % 2) for u in range(n_users)]
    seeds = {}
    for seed, ranks in ranks_by_seed.items():
        ranks = np.asarray(ranks, float)
        metrics = ranking_metrics(ranks, ks) | satisfaction_split(ranks, satisfied, ks)
        seeds[str(seed)] = metrics | dict((extra_by_seed or {}).get(seed, {}))
    summary = aggregate_seeds(list(seeds.values()))
    mean = {k: v["mean"] for k, v in summary.items()}
    std = {k: (v["std"] if v["std"] == v["std"] else None) for k, v in summary.items()}
    import copy

    return {
        "backbone": backbone,
        "guidance": guidance,
        "seeds": copy.deepcopy(seeds),
        "mean": dict(mean),
        "std": dict(std),
        "valid": {
            "seeds": seeds,
            "mean": mean,
            "std": std,
            "per_user": {
                "split": "valid",
                "user_idx": list(range(1, n_users + 1)),
                "satisfied": [float(v) for v in satisfied],
                "ranks": {str(s): [float(r) for r in ranks] for s, ranks in ranks_by_seed.items()},
            },
        },
        "model_dirs": {str(s): str(p) for s, p in (model_dirs or {}).items()},
    }
