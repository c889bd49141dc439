"""The model registry `mtrec-recommender` with aliases `champion` and `challenger`.

No deprecated stages. Each registered version carries what the next gate
needs to compare against it without re-reading old runs:

    candidate, seed, seed_rule       which candidate, and which seed's model
    data_version, git_commit         what it was trained and judged on
    mtrec.evidence_split             "valid": the split the evidence comes from
    mtrec.valid_seeds                JSON {seed: {metric: value}} of the gate's metrics
    mtrec.valid_per_user             runs:/ URI of the per-user validation ranks
    mtrec.metrics_mean               JSON validation means over seeds
    mtrec.test_mean                  JSON test means (for the record only)

Reading them never raises: what is absent or malformed is reported as a
problem, and the gate fails the comparison that needed it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"
METRICS_TAG = "mtrec.metrics_mean"
TEST_METRICS_TAG = "mtrec.test_mean"
EVIDENCE_SPLIT_TAG = "mtrec.evidence_split"
VALID_SEEDS_TAG = "mtrec.valid_seeds"
PER_USER_TAG = "mtrec.valid_per_user"


def _client():
    import mlflow

    return mlflow.MlflowClient()


def alias_version(registered_model: str, alias: str) -> Any | None:
    """The ModelVersion behind `alias`, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(registered_model, alias)
    except MlflowException:
        return None


def _json_tag(tags: Mapping[str, str], key: str) -> tuple[Any, str | None]:
    """(parsed value, problem): a missing or malformed tag is a problem, never an exception."""
    raw = tags.get(key)
    if raw is None:
        return None, f"tag {key} is missing"
    try:
        return json.loads(raw), None
    except (TypeError, ValueError) as error:
        return None, f"tag {key} is not valid JSON ({error})"


def champion_record(registered_model: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """`{"name", "version", "candidate", "seed", "data_version", "metrics", ...}`
    of the version behind `alias`; None without one. `metrics` is None when
    its tag is missing or malformed (`problems` says which)."""
    version = alias_version(registered_model, alias)
    if version is None:
        return None
    tags = dict(version.tags or {})
    metrics, problem = _json_tag(tags, METRICS_TAG)
    return {
        "name": f"{registered_model}@{alias}",
        "version": str(version.version),
        "candidate": tags.get("candidate"),
        "seed": tags.get("seed"),
        "data_version": tags.get("data_version"),
        "git_commit": tags.get("git_commit"),
        "evidence_split": tags.get(EVIDENCE_SPLIT_TAG),
        "run_id": version.run_id,
        "metrics": metrics if isinstance(metrics, Mapping) else None,
        "tags": tags,
        "problems": [problem] if problem else [],
    }


def _download_json(uri: str) -> tuple[Any, str | None]:
    import mlflow

    try:
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
            return json.loads(Path(local).read_text()), None
    except Exception as error:  # noqa: BLE001 - any failure to read is a reason to fail the rule
        return None, f"per-user evidence {uri} could not be read ({type(error).__name__}: {error})"


def stored_evidence(record: Mapping[str, Any]) -> dict[str, Any]:
    """The champion's validation evidence as its tags and artifact hold it:
    `{"valid": {"seeds", "per_user"}, "problems": [...]}`. Missing, NaN or
    malformed evidence is listed in `problems`, which fail the gate's rules."""
    tags = record.get("tags") or {}
    problems: list[str] = []
    split = tags.get(EVIDENCE_SPLIT_TAG)
    if split != "valid":
        problems.append(
            f"tag {EVIDENCE_SPLIT_TAG} is {split!r}, not 'valid': "
            "its metrics are not known to be validation metrics"
        )
    seeds, problem = _json_tag(tags, VALID_SEEDS_TAG)
    if problem:
        problems.append(problem)
    elif not isinstance(seeds, Mapping) or not all(isinstance(m, Mapping) for m in seeds.values()):
        problems.append(f"tag {VALID_SEEDS_TAG} is not a mapping seed -> metrics")
        seeds = None
    else:
        for seed, metrics in seeds.items():
            for metric, value in metrics.items():
                if not isinstance(value, int | float) or not math.isfinite(float(value)):
                    problems.append(f"tag {VALID_SEEDS_TAG}: seed {seed} {metric} is {value!r}")
    per_user = None
    uri = tags.get(PER_USER_TAG)
    if uri is None:
        problems.append(f"tag {PER_USER_TAG} is missing")
    else:
        per_user, problem = _download_json(uri)
        if problem:
            problems.append(problem)
    return {"valid": {"seeds": seeds, "per_user": per_user}, "problems": problems}


def register(
    model_uri: str,
    registered_model: str,
    alias: str,
    tags: Mapping[str, str],
    metrics_mean: Mapping[str, Any],
) -> str:
    """Register `model_uri` as a new version, tag it, point `alias` at it. Returns the version."""
    import mlflow

    version = mlflow.register_model(model_uri, registered_model)
    client = _client()
    all_tags = dict(tags) | {METRICS_TAG: json.dumps(dict(metrics_mean), sort_keys=True)}
    for key, value in all_tags.items():
        client.set_model_version_tag(registered_model, version.version, key, str(value))
    client.set_registered_model_alias(registered_model, alias, version.version)
    return str(version.version)


def champion_uri(registered_model: str, alias: str = CHAMPION) -> str:
    return f"models:/{registered_model}@{alias}"
