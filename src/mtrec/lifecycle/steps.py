"""Stage `gate`: track every candidate in MLflow, decide on validation, register.

One function that the CLI (`mtrec gate`, what dvc.yaml runs), the Prefect
flow and the tests call alike.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from mtrec.config import EvaluateConfig, GateConfig, TrackingConfig
from mtrec.lifecycle import registry, tracking
from mtrec.lifecycle.gate import SELECTION_SPLIT, decide, gate_metrics
from mtrec.reward import reward_model_dir

log = logging.getLogger(__name__)


def _reward_dirs(models_dir: Path | None, backbones: set[str | None]) -> dict[str, Path]:
    """backbone -> its trained reward model folder (backbones without one left out)."""
    if models_dir is None:
        return {}
    found = {b: reward_model_dir(models_dir, b) for b in backbones if b}
    return {b: folder for b, folder in found.items() if (folder / "config.json").exists()}


def with_per_user_evidence(report: dict[str, Any], project_root: Path) -> dict[str, Any]:
    """A copy of the metrics report with each candidate's per-user validation
    ranks (`valid.per_user_file`) read into `valid.per_user`; a file that is
    missing or unreadable leaves `valid.per_user_error` instead."""
    report = copy.deepcopy(report)
    for candidate in (report.get("candidates") or {}).values():
        valid = candidate.get("valid")
        if not isinstance(valid, dict) or "per_user" in valid:
            continue
        name = valid.get("per_user_file")
        if not name:
            valid["per_user_error"] = "no per-user validation ranks (valid.per_user_file)"
            continue
        path = Path(project_root) / name
        try:
            valid["per_user"] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            valid["per_user_error"] = f"per-user validation ranks {name} unreadable ({error})"
    return report


def rescore_champion(
    tracking_config: TrackingConfig,
    evaluate_config: EvaluateConfig,
    processed_dir: Path,
    record: dict[str, Any],
) -> dict[str, Any]:
    """The registered champion model scored on the current validation split:
    `{"valid": {"seeds": {<its seed>: metrics}, "per_user": ...}, "fixed_model": True}`.
    Raises ValueError with the reason when that is not possible."""
    from mtrec.data.processed import load_processed
    from mtrec.device import resolve_device
    from mtrec.evaluation.evaluate import (
        per_user_evidence,
        prepare_split,
        score_split_with_ranks,
    )
    from mtrec.lifecycle.package import download_champion
    from mtrec.models import load_item_ids, load_model

    data = load_processed(processed_dir)
    current = data.items.sort_values("item_idx")["item_id"].astype(str).tolist()
    with tempfile.TemporaryDirectory(prefix="mtrec-champion-") as scratch:
        _, recommender_dir, _ = download_champion(tracking_config, registry.CHAMPION, Path(scratch))
        saved = load_item_ids(recommender_dir)
        if saved is None:
            raise ValueError("its saved model has no item ids to match the current catalogue")
        if saved != current:
            raise ValueError(
                f"its item catalogue ({len(saved)} items) is not the current data's "
                f"({len(current)} items, same ids in the same order needed): it cannot rank "
                "the current catalogue"
            )
        device = resolve_device(evaluate_config.device, "evaluate.device")
        model = load_model(recommender_dir, device=device)
    inputs = prepare_split(data, SELECTION_SPLIT, model.max_history)
    metrics, ranks = score_split_with_ranks(model, inputs, evaluate_config)
    seed = str(record.get("seed") or "registered")
    return {
        "valid": {
            "seeds": {seed: {k: (float(v) if v == v else None) for k, v in metrics.items()}},
            "per_user": per_user_evidence(inputs, {seed: ranks}),
        },
        "fixed_model": True,
        "problems": [],
    }


def champion_evidence(
    record: dict[str, Any] | None,
    version_tag: str,
    tracking_config: TrackingConfig,
    evaluate_config: EvaluateConfig,
    processed_dir: Path,
) -> dict[str, Any] | None:
    """The champion as `gate.decide` takes it: its stored validation evidence
    when it was judged on the current data version; re-scored on the current
    validation split when it was not; `problems` (which fail every champion
    rule) when neither is possible."""
    if record is None:
        return None
    champion = {k: v for k, v in record.items() if k not in ("tags", "metrics", "problems")}
    if record.get("data_version") == version_tag:
        stored = registry.stored_evidence(record)
        return champion | stored | {"source": "registry (same data version)"}
    was = record.get("data_version")
    try:
        rescored = rescore_champion(tracking_config, evaluate_config, processed_dir, record)
    except Exception as error:  # noqa: BLE001 - the reason goes into the failing rule
        reason = f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else error
        return champion | {
            "valid": None,
            "problems": [
                f"the champion was judged on data {was}, the candidates on {version_tag}, "
                f"and it could not be re-scored on the current data: {reason}"
            ],
            "source": "not re-scored",
        }
    log.info("gate: champion judged on data %s re-scored on %s", was, version_tag)
    return champion | rescored | {"source": f"re-scored on the current data ({version_tag})"}


def run_gate(
    metrics_path: Path,
    gate_path: Path,
    gate_config: GateConfig,
    tracking_config: TrackingConfig,
    project_root: Path,
    processed_dir: Path,
    models_dir: Path | None = None,
    dvc_lock: Path | None = None,
    evaluate_config: EvaluateConfig | None = None,
) -> dict[str, Any]:
    """Read `reports/metrics.json` (and the per-user validation ranks it
    names), log a pipeline run with one child run per candidate, apply the gate
    on validation evidence against the registry's champion, set the `champion`
    / `challenger` alias, write `gate_path`. Returns the decision.

    Each candidate is logged (and so packaged) with the reward model of its
    backbone, `reward_model_dir(models_dir, backbone)`, when one was trained.
    `evaluate_config` scores a champion from another data version again
    (default: EvaluateConfig())."""
    import mlflow

    project_root = Path(project_root)
    evaluate_config = evaluate_config or EvaluateConfig()
    report = json.loads(Path(metrics_path).read_text())
    evidence_report = with_per_user_evidence(report, project_root)
    tracking.configure_tracking(tracking_config, project_root)
    version_tag = tracking.data_version(processed_dir, dvc_lock)
    commit = tracking.git_commit(project_root)
    record = registry.champion_record(tracking_config.registered_model)
    champion = champion_evidence(
        record, version_tag, tracking_config, evaluate_config, Path(processed_dir)
    )
    decision = decide(evidence_report, champion, gate_config)
    decision["data_version"] = version_tag
    decision["git_commit"] = commit

    logged: dict[str, dict[str, Any]] = {}
    with tracking.pipeline_run(version_tag, commit) as parent:
        candidates = sorted((report.get("candidates") or {}).items())
        reward_dirs = _reward_dirs(models_dir, {c.get("backbone") for _, c in candidates})
        for backbone, reward_dir in sorted(reward_dirs.items()):
            tracking.log_reward_model(reward_dir, backbone=backbone)
        for name, candidate in candidates:
            valid = evidence_report["candidates"][name].get("valid") or {}
            logged[name] = tracking.log_candidate(
                name,
                candidate,
                project_root,
                reward_dirs.get(candidate.get("backbone")),
                tracking_config.log_all_seeds,
                representative=decision["candidates"][name]["registered_seed"],
                per_user_evidence=valid.get("per_user") if isinstance(valid, dict) else None,
            )
        decision["mlflow"] = {
            # Never the URI itself: it may hold a user, password or token.
            "tracking_uri": tracking.public_tracking_uri(mlflow.get_tracking_uri(), project_root),
            "pipeline_run_id": parent.info.run_id,
            "candidate_runs": logged,
        }
        decision["registry"] = _apply(
            decision, report, logged, tracking_config, gate_config, version_tag, commit
        )
        mlflow.set_tags(
            {
                "gate.action": decision["action"],
                "gate.winner": str(decision["winner"]),
                "gate.challenger": str(decision["challenger"]),
                "gate.selection_split": SELECTION_SPLIT,
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
    gate_config: GateConfig,
    version_tag: str,
    commit: str,
) -> dict[str, Any] | None:
    """Register the winner as champion, or the failing best as challenger: the
    model of the seed the verdict names, tagged with every seed's evidence."""
    name = decision["winner"] or decision["challenger"]
    if name is None:
        return None
    alias = registry.CHAMPION if decision["winner"] else registry.CHALLENGER
    entry = logged.get(name, {})
    model_uri = entry.get("model_uri")
    if model_uri is None:
        # A decision the registry cannot carry out must say so, not pass silently.
        decision["action"] = "none"
        decision["reason"] += f"; but {name} has no model directory to register"
        return {"error": f"{name} has no logged model"}
    verdict = decision["candidates"][name]
    if entry.get("seed") != verdict["registered_seed"]:
        decision["action"] = "none"
        decision["reason"] += (
            f"; but the model logged for {name} is seed {entry.get('seed')}, not the seed "
            f"the gate chose ({verdict['registered_seed']}): nothing registered"
        )
        return {"error": f"{name}: seed {verdict['registered_seed']} has no model directory"}
    candidate = report["candidates"][name]
    valid_means = dict((candidate.get("valid") or {}).get("mean") or {}) | verdict["metrics"]
    metrics = gate_metrics(gate_config)
    test_means = {m: (candidate.get("mean") or {}).get(m) for m in metrics}
    version = registry.register(
        model_uri,
        tracking_config.registered_model,
        alias,
        tags={
            "candidate": name,
            "data_version": version_tag,
            "git_commit": commit,
            "seed": str(entry["seed"]),
            "seed_rule": verdict["seed_rule"],
            "gate.action": decision["action"],
            registry.EVIDENCE_SPLIT_TAG: SELECTION_SPLIT,
            registry.VALID_SEEDS_TAG: json.dumps(verdict["seeds"], sort_keys=True),
            registry.TEST_METRICS_TAG: json.dumps(test_means, sort_keys=True),
        }
        | ({registry.PER_USER_TAG: entry["evidence_uri"]} if entry.get("evidence_uri") else {}),
        metrics_mean=valid_means,
    )
    return {
        "registered_model": tracking_config.registered_model,
        "alias": alias,
        "version": version,
        "model_uri": registry.champion_uri(tracking_config.registered_model, alias),
        "candidate": name,
        "seed": entry["seed"],
        "seed_rule": verdict["seed_rule"],
        "evidence_split": SELECTION_SPLIT,
    }
