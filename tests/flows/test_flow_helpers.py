"""The flow's small helpers: task runner choice, the gate artifact, output-aware caching."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import gate_candidate
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from mtrec.config import FlowConfig, GateConfig
from mtrec.lifecycle.gate import decide

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline():
    sys.path.insert(0, str(ROOT / "flows"))
    try:
        import pipeline as module
    finally:
        sys.path.remove(str(ROOT / "flows"))
    return module


def test_task_runner_follows_the_param(pipeline):
    processes = pipeline.task_runner(FlowConfig(task_runner="process"))
    assert isinstance(processes, ProcessPoolTaskRunner)
    threads = pipeline.task_runner(FlowConfig(task_runner="thread", max_workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    assert pipeline.task_runner(FlowConfig(task_runner="sequential"))._max_workers == 1


def test_io_retries_come_from_the_param(pipeline):
    task = pipeline.with_io_retries(pipeline.package_task, FlowConfig(io_retries=4))
    assert task.retries == 4
    assert pipeline.train_candidate_task.retries == 0  # computations never retry
    assert pipeline.gate_task.retries == 0  # registering is not idempotent


def test_missing_outputs_force_a_rerun(pipeline, tmp_path):
    out = tmp_path / "train_summary.json"
    assert pipeline.unless_missing(pipeline.train_candidate_task, out).refresh_cache is True
    out.write_text("{}")
    assert pipeline.unless_missing(pipeline.train_candidate_task, out).refresh_cache is not True


def test_metrics_table_shows_every_candidate_and_the_decision(pipeline):
    report = {
        "candidates": {
            "sasrec-none": {
                "backbone": "sasrec",
                "guidance": "none",
                "seeds": {"0": {"NDCG_p@10": 0.1, "AUC": 0.7, "NDCG@10": 0.1}},
                "mean": {"NDCG_p@10": 0.1, "AUC": 0.7, "NDCG@10": 0.1},
                "std": {"NDCG_p@10": 0.01, "AUC": 0.0, "NDCG@10": 0.0},
            },
            "sasrec-mtrec": {
                "backbone": "sasrec",
                "guidance": "mtrec",
                "seeds": {"0": {"NDCG_p@10": 0.2, "AUC": 0.7, "NDCG@10": 0.1}},
                "mean": {"NDCG_p@10": 0.2, "AUC": 0.7, "NDCG@10": 0.1},
                "std": {"NDCG_p@10": 0.02, "AUC": 0.0, "NDCG@10": 0.0},
            },
        }
    }
    # The gate decides on validation evidence (per-user ranks); the table shows test.
    ranks = np.random.default_rng(0).integers(1, 30, 200).astype(float)
    for name, seed_ranks in (("sasrec-none", ranks), ("sasrec-mtrec", np.maximum(1, ranks // 2))):
        evidence = gate_candidate("sasrec", "x", {0: seed_ranks}, extra_by_seed={0: {"AUC": 0.7}})
        report["candidates"][name]["valid"] = evidence["valid"]
    decision = decide(report, None, GateConfig())
    table = pipeline.metrics_table(report, decision, "NDCG_p@10")
    assert "| sasrec-mtrec | 0.2000 ± 0.0200 | 0.7000 ± 0.0000 | 0.1000 ± 0.0000 | True |" in table
    assert "**Gate: promote**" in table
