"""The flow's small helpers: the stage plan from dvc.yaml, the task runner, retries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from mtrec.config import FlowConfig
from mtrec.pipeline import StagePlan, plan

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
    threads = pipeline.task_runner(FlowConfig(task_runner="thread", max_workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    assert pipeline.task_runner(FlowConfig(task_runner="sequential"))._max_workers == 1


def test_only_io_stages_retry(pipeline):
    config = FlowConfig(io_retries=4, io_stages=("ingest", "package"))
    ingest = StagePlan("ingest", "mtrec ingest", ("data/raw",), ())
    train = StagePlan("train_recommender@gru4rec-none", "mtrec train-recommender", (), ())
    assert pipeline.task_for(ingest, config).retries == 4
    assert pipeline.task_for(train, config).retries == 0  # computations never retry


def test_plan_is_dvc_yaml_in_dependency_order():
    stages = plan(ROOT)
    names = [stage.name for stage in stages]
    position = {name: index for index, name in enumerate(names)}
    for stage in stages:
        assert all(position[up] < position[stage.name] for up in stage.upstream), stage
    assert names[0] == "ingest" and "online_eval" in names and "package" in names
    matrix = [name for name in names if name.startswith("train_recommender@")]
    assert matrix and all(stage.cmd.startswith("mtrec ") for stage in stages)
