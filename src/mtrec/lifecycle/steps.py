"""Stage `gate`: track every candidate in MLflow, decide, register.

One function that the CLI (`mtrec gate`, what dvc.yaml runs), the Prefect
flow and the tests call alike.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mtrec.config import GateConfig, TrackingConfig
from mtrec.lifecycle import registry, tracking
from mtrec.lifecycle.gate import decide
from mtrec.reward import reward_model_dir

log = logging.getLogger(__name__)


def _reward_dirs(models_dir: Path | None, backbones: set[str | None]) -> dict[str, Path]:
    """backbone -> its trained reward model folder (backbones without one left out)."""
    if models_dir is None:
        return {}
    found = {b: reward_model_dir(models_dir, b) for b in backbones if b}
    return {b: folder for b, folder in found.items() if (folder / "config.json").exists()}


def run_gate(
    metrics_path: Path,
    gate_path: Path,
    gate_config: GateConfig,
    tracking_config: TrackingConfig,
    project_root: Path,
    processed_dir: Path,
    models_dir: Path | None = None,
    dvc_lock: Path | None = None,
) -> dict[str, Any]:
    """Read `reports/metrics.json`, log a pipeline run with one child run per
    candidate, apply the gate against the registry's champion, set the
    `champion` / `challenger` alias, write `gate_path`. Returns the decision.

    Each candidate is logged (and so packaged) with the reward model of its
    backbone, `reward_model_dir(models_dir, backbone)`, when one was trained."""
    import mlflow

    project_root = Path(project_root)
    report = json.loads(Path(metrics_path).read_text())
    tracking.configure_tracking(tracking_config, project_root)
    version_tag = tracking.data_version(processed_dir, dvc_lock)
    commit = tracking.git_commit(project_root)
    champion = registry.champion_record(tracking_config.registered_model)
    decision = decide(report, champion, gate_config)
    decision["data_version"] = version_tag
    decision["git_commit"] = commit
    if champion is not None and champion.get("data_version") != version_tag:
        decision["warning"] = (
            f"champion was evaluated on data {champion.get('data_version')}, "
            f"candidates on {version_tag}: the comparison crosses data versions"
        )

    logged: dict[str, dict[str, Any]] = {}
    with tracking.pipeline_run(version_tag, commit) as parent:
        candidates = sorted((report.get("candidates") or {}).items())
        reward_dirs = _reward_dirs(models_dir, {c.get("backbone") for _, c in candidates})
        for backbone, reward_dir in sorted(reward_dirs.items()):
            tracking.log_reward_model(reward_dir, backbone=backbone)
        for name, candidate in candidates:
            logged[name] = tracking.log_candidate(
                name,
                candidate,
                project_root,
                reward_dirs.get(candidate.get("backbone")),
                tracking_config.log_all_seeds,
            )
        decision["mlflow"] = {
            "tracking_uri": mlflow.get_tracking_uri(),
            "pipeline_run_id": parent.info.run_id,
            "candidate_runs": logged,
        }
        decision["registry"] = _apply(
            decision, report, logged, tracking_config, version_tag, commit
        )
        mlflow.set_tags(
            {
                "gate.action": decision["action"],
                "gate.winner": str(decision["winner"]),
                "gate.challenger": str(decision["challenger"]),
            }
        )
        mlflow.log_dict(report, "metrics.json")
        mlflow.log_dict(decision, "gate.json")

    gate_path = Path(gate_path)
    gate_path.parent.mkdir(parents=True, exist_ok=True)
    gate_path.write_text(json.dumps(decision, indent=2, default=str) + "\n")
    log.info("gate: %s", decision["reason"])
    return decision


def _apply(
    decision: dict[str, Any],
    report: dict[str, Any],
    logged: dict[str, dict[str, Any]],
    tracking_config: TrackingConfig,
    version_tag: str,
    commit: str,
) -> dict[str, Any] | None:
    """Register the winner as champion, or the failing best as challenger."""
    name = decision["winner"] or decision["challenger"]
    if name is None:
        return None
    alias = registry.CHAMPION if decision["winner"] else registry.CHALLENGER
    model_uri = logged.get(name, {}).get("model_uri")
    if model_uri is None:
        # A decision the registry cannot carry out must say so, not pass silently.
        decision["action"] = "none"
        decision["reason"] += f"; but {name} has no model directory to register"
        return {"error": f"{name} has no logged model"}
    candidate = report["candidates"][name]
    means = dict(decision["candidates"][name]["metrics"])
    means |= {k: v for k, v in (candidate.get("mean") or {}).items() if k not in means}
    version = registry.register(
        model_uri,
        tracking_config.registered_model,
        alias,
        tags={
            "candidate": name,
            "data_version": version_tag,
            "git_commit": commit,
            "seed": str(logged[name]["seed"]),
            "gate.action": decision["action"],
        },
        metrics_mean=means,
    )
    return {
        "registered_model": tracking_config.registered_model,
        "alias": alias,
        "version": version,
        "model_uri": registry.champion_uri(tracking_config.registered_model, alias),
        "candidate": name,
    }
