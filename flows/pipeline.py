"""The mtrec pipeline as a Prefect flow: thin tasks over the library's step functions.

    ingest -> validate -> split -> train_reward (+ read-out) -> train candidates
    (in parallel, task runner from params `flow.task_runner`) -> evaluate ->
    gate (MLflow + registry) -> package (Bento)

Every task calls the same function the `mtrec` CLI (and so dvc.yaml) calls;
no step logic lives here. Retries only on tasks whose failures are I/O
(reading the source, the Bento store). Results are cached on
the task's inputs + source; inputs include a digest of the files a task
reads, so changed data reruns it.

Run locally: `python flows/pipeline.py [params.yaml]`; deployments: prefect.yaml.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from mtrec.config import (
    EvaluateConfig,
    FlowConfig,
    GateConfig,
    PackageConfig,
    Params,
    RecommenderConfig,
    RewardConfig,
    TrackingConfig,
    load_params,
)

CACHED = INPUTS + TASK_SOURCE


def digest(path: Path) -> str:
    """Content hash of a file or folder: part of a task's inputs, so its cache
    key changes when the data it reads changes."""
    from mtrec.lifecycle.tracking import hash_folder

    return hash_folder(path) if Path(path).exists() else "missing"


def with_io_retries(io_task, config: FlowConfig):
    """Retries belong to idempotent tasks whose failures are I/O (source files,
    the Bento store), never to computations that would fail again."""
    return io_task.with_options(
        retries=config.io_retries, retry_delay_seconds=config.io_retry_delay_seconds
    )


def unless_missing(cached_task, *outputs: Path):
    """The task, forced to recompute (refreshing its cache) when any of the
    files it writes is gone: a cache hit must not stand in for deleted outputs."""
    missing = not all(Path(output).exists() for output in outputs)
    return cached_task.with_options(refresh_cache=True) if missing else cached_task


# --- tasks: one library call each --------------------------------------------------


@task(cache_policy=CACHED)
def ingest_task(params: Params) -> str:
    from mtrec.data.ingest import ingest

    ingest(params.data, params.paths.raw)
    return str(params.paths.raw)


@task(cache_policy=CACHED)
def validate_task(params: Params, raw_digest: str) -> str:
    from mtrec.data.validate import validate_exposures

    report = validate_exposures(
        params.paths.raw,
        params.paths.validated,
        params.paths.reports / "validation.json",
        params.validate_,
        params.paths.quarantine,
    )
    get_run_logger().info(report.message())
    return str(params.paths.validated)


@task(cache_policy=CACHED)
def split_task(params: Params, validated_digest: str) -> str:
    from mtrec.data.split import split_exposures

    split_exposures(params.paths.validated, params.paths.processed, params.split)
    return str(params.paths.processed)


@task(cache_policy=CACHED)
def train_reward_task(
    config: RewardConfig, processed: str, processed_digest: str, out_dir: str
) -> str:
    from mtrec.reward.train import train_reward

    train_reward(config, Path(processed), Path(out_dir), progress=False)
    return out_dir


@task(cache_policy=CACHED)
def read_out_task(
    reward_dir: str,
    irl_dir: str | None,
    reward_digest: str,
    processed: str,
    rewards_path: str,
    reports: str,
) -> str:
    from mtrec.reward.readout import read_out_rewards

    read_out_rewards(
        Path(reward_dir),
        Path(processed),
        Path(rewards_path),
        Path(reports),
        irl_model_dir=Path(irl_dir) if irl_dir else None,
        progress=False,
    )
    return rewards_path


@task(cache_policy=CACHED)
def train_candidate_task(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    processed: str,
    inputs_digest: str,
    out_dir: str,
) -> dict:
    from mtrec.training.recommender import train_recommender

    return train_recommender(config, backbone, guidance, processed, out_dir)


@task
def evaluate_task(
    config: EvaluateConfig, processed: str, models: str, reports: str, names: list[str]
) -> dict:
    from mtrec.evaluation.evaluate import evaluate_candidates

    return evaluate_candidates(config, processed, models, reports, names=names, progress=False)


@task
def gate_task(params: Params, gate: GateConfig, tracking: TrackingConfig, models: str) -> dict:
    from mtrec.lifecycle.steps import run_gate

    return run_gate(
        params.paths.reports / "metrics.json",
        params.paths.reports / "gate.json",
        gate,
        tracking,
        Path.cwd(),
        params.paths.processed,
        Path(models),
        Path("dvc.lock"),
    )


@task
def package_task(params: Params, tracking: TrackingConfig, package: PackageConfig) -> dict:
    from mtrec.lifecycle.package import package_champion

    return package_champion(tracking, package, Path.cwd(), params.paths.reports / "package.json")


# --- the candidate matrix, on the configured task runner ------------------------------


@flow(name="mtrec-train-candidates")
def train_candidates(
    config: RecommenderConfig, processed: str, inputs_digest: str, models: str
) -> list[str]:
    futures = {}
    for backbone in config.backbones:
        for guidance in config.guidances:
            out_dir = Path(models) / f"{backbone}-{guidance}"
            train = unless_missing(train_candidate_task, out_dir / "train_summary.json")
            futures[f"{backbone}-{guidance}"] = train.submit(
                config, backbone, guidance, processed, inputs_digest, str(out_dir)
            )
    return [name for name, future in futures.items() if future.result() is not None]


def task_runner(config: FlowConfig):
    if config.task_runner == "process":
        return ProcessPoolTaskRunner(max_workers=config.max_workers)
    workers = 1 if config.task_runner == "sequential" else config.max_workers
    return ThreadPoolTaskRunner(max_workers=workers)


def metrics_table(report: dict, decision: dict, primary: str) -> str:
    """Markdown: candidates' mean ± std of the gate's metrics, then the decision."""
    metrics = [primary, *decision["config"]["guard_metrics"]]
    lines = [
        "| candidate | " + " | ".join(metrics) + " | passes |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for name, entry in sorted(report["candidates"].items()):
        cells = []
        for metric in metrics:
            mean, std = entry["mean"].get(metric), entry["std"].get(metric)
            cells.append("n/a" if mean is None else f"{mean:.4f} ± {std or 0:.4f}")
        verdict = decision["candidates"].get(name, {})
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict.get('passed')} |")
    registry = decision.get("registry") or {}
    return "\n".join(
        [
            "# mtrec pipeline",
            "",
            *lines,
            "",
            f"**Gate: {decision['action']}** — {decision['reason']}",
            "",
            f"Registry: {json.dumps(registry)}" if registry else "Registry: unchanged",
            f"Data version: `{decision.get('data_version')}`",
        ]
    )


@flow(name="mtrec-pipeline", log_prints=True)
def mtrec_pipeline(params_path: str = "params.yaml", package: bool = True) -> dict[str, Any]:
    """The whole pipeline on `params_path` (relative to the working directory)."""
    params = load_params(params_path)
    flow_config = params.flow
    recommender = params.recommender
    paths = params.paths

    raw = unless_missing(with_io_retries(ingest_task, flow_config), paths.raw)(params)
    validated = unless_missing(validate_task, paths.validated)(params, digest(Path(raw)))
    processed = unless_missing(split_task, paths.processed / "meta.json")(
        params, digest(Path(validated))
    )
    processed_digest = digest(Path(processed))

    inputs_digest = processed_digest
    if recommender.rewards_path is not None:
        from mtrec.reward import reward_model_dir
        from mtrec.reward.train import reward_runs

        # One reward model per backbone and, for the `irl` guidance, its -IRL
        # ablation (as `mtrec train-reward`), trained side by side; then each
        # backbone's read-out writes the table its candidates train on.
        reward_config = params.reward
        reward_futures = {}
        for backbone in recommender.backbones:
            for out, run_config in reward_runs(reward_config, paths.models, backbone).items():
                train = unless_missing(train_reward_task, out / "config.json")
                reward_futures[out] = train.submit(
                    run_config, processed, processed_digest, str(out)
                )
        reward_dirs = {out: future.result() for out, future in reward_futures.items()}
        tables = []
        for backbone in recommender.backbones:
            qnetwork = reward_model_dir(paths.models, backbone)
            irl = reward_model_dir(paths.models, backbone, ablation=True)
            table = recommender.rewards_table(backbone)
            tables.append(
                unless_missing(read_out_task, table)(
                    reward_dirs[qnetwork],
                    reward_dirs.get(irl),
                    ":".join(digest(folder) for folder in (qnetwork, irl) if folder in reward_dirs),
                    processed,
                    str(table),
                    str(paths.reports / "reward" / backbone),
                )
            )
        inputs_digest = ":".join([processed_digest, *(digest(Path(t)) for t in tables)])

    runner = task_runner(flow_config)
    names = train_candidates.with_options(task_runner=runner)(
        recommender, processed, inputs_digest, str(paths.candidates)
    )
    report = evaluate_task(
        params.evaluate,
        processed,
        str(paths.candidates),
        str(paths.reports),
        names,
    )
    gate_config = params.gate
    tracking = params.tracking
    # No retries: a gate that failed after registering would register twice.
    decision = gate_task(params, gate_config, tracking, str(paths.models))
    create_markdown_artifact(
        markdown=metrics_table(report, decision, gate_config.primary_metric),
        key="mtrec-gate",
        description="Candidates' offline metrics (mean ± std over seeds) and the gate decision",
    )
    packaged = None
    if package and decision["action"] == "promote":
        packaged = with_io_retries(package_task, flow_config)(params, tracking, params.package)
    return {"candidates": names, "gate": decision["action"], "package": packaged}


if __name__ == "__main__":
    mtrec_pipeline(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
