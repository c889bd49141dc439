"""The mtrec pipeline as a Prefect flow that runs dvc.yaml's stages.

`dvc.yaml` is the one definition of the pipeline; this flow adds what Prefect
is for (schedules, parallel tasks, retries on I/O, logs, an artifact) and no
step logic. Each stage of dvc.yaml (each member of the backbone x guidance
matrix included) is one task that runs the stage as `dvc repro` would
(`mtrec.pipeline.run_stage`: skipped when `dvc status` says up to date, else
its command, then `dvc commit`), after the tasks of the stages it depends on;
independent stages (the candidate matrix) run in parallel on a thread pool.
So a scheduled run is a DVC run: its data and models land in DVC's cache and
`dvc.lock`, the run is kept as a DVC experiment (`dvc exp save`), and it is
pushed when the project has a default DVC remote.

Run locally from the project root: `python flows/pipeline.py`; deployments:
prefect.yaml.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner

from mtrec.config import FlowConfig, load_params
from mtrec.pipeline import StagePlan, plan, push_if_configured, record_run, run_stage


@task(cache_policy=NO_CACHE, task_run_name="{stage.name}")
def stage_task(project: str, stage: StagePlan) -> str:
    """One dvc.yaml stage. DVC, not Prefect, decides whether it is up to date."""
    logger = get_run_logger()
    return run_stage(Path(project), stage, log=logger.info)


def task_for(stage: StagePlan, config: FlowConfig):
    """Retries belong to idempotent stages whose failures are I/O (reading the
    source, the Bento store), never to computations that would fail again."""
    if stage.name.split("@")[0] in config.io_stages:
        return stage_task.with_options(
            retries=config.io_retries, retry_delay_seconds=config.io_retry_delay_seconds
        )
    return stage_task


def task_runner(config: FlowConfig) -> ThreadPoolTaskRunner:
    # Threads suffice: each stage is a subprocess. DVC's own commands are
    # serialised by a lock inside this process, so processes would break it.
    workers = 1 if config.task_runner == "sequential" else config.max_workers
    return ThreadPoolTaskRunner(max_workers=workers)


def summary_markdown(project: Path, states: dict[str, str], reports: Path) -> str:
    """Markdown: what each stage did, then the gate's decision as gate.json has it."""
    lines = ["# mtrec pipeline", "", "| stage | result |", "|---|---|"]
    lines += [f"| {name} | {state} |" for name, state in states.items()]
    gate_path = project / reports / "gate.json"
    if gate_path.exists():
        gate = json.loads(gate_path.read_text())
        lines += ["", f"**Gate: {gate.get('action')}**: {gate.get('reason')}"]
    return "\n".join(lines)


@flow(name="mtrec-stages")
def run_stages(project: str, stages: list[StagePlan], config: FlowConfig) -> dict[str, str]:
    """Each stage after the stages it depends on; independent ones in parallel.
    The first failed stage fails the flow with its name and its output's tail."""
    futures = {}
    for stage in stages:  # upstream stages come first
        futures[stage.name] = task_for(stage, config).submit(
            project, stage, wait_for=[futures[name] for name in stage.upstream]
        )
    return {name: future.result() for name, future in futures.items()}


@flow(name="mtrec-pipeline", log_prints=True)
def mtrec_pipeline(
    project_dir: str = ".", record: bool = True, push: bool = True
) -> dict[str, Any]:
    """Every stage of `project_dir`'s dvc.yaml on its params.yaml; returns what
    each stage did ("ran" or "up to date"), the experiment it was saved as and
    the remote it was pushed to."""
    project = Path(project_dir).resolve()
    params = load_params(project / "params.yaml")
    config = params.flow
    stages = plan(project)
    states = run_stages.with_options(task_runner=task_runner(config))(str(project), stages, config)
    experiment = None
    if record:
        run_name = get_run_context().flow_run.name
        experiment = record_run(project, f"prefect-{run_name}")
    remote = push_if_configured(project) if push else None
    create_markdown_artifact(
        markdown=summary_markdown(project, states, params.paths.reports),
        key="mtrec-pipeline",
        description="What each dvc.yaml stage did in this run, and the gate's decision",
    )
    return {"stages": states, "experiment": experiment, "remote": remote}


if __name__ == "__main__":
    mtrec_pipeline(sys.argv[1] if len(sys.argv) > 1 else ".")
