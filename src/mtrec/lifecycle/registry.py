"""The model registry `mtrec-recommender` with aliases `champion` and `challenger`.

No deprecated stages. Each registered version carries tags the gate needs
later: the candidate name, the data version, the git commit and its mean
metrics (JSON, original metric names), so the next gate can compare against
the champion without re-reading old runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"
METRICS_TAG = "mtrec.metrics_mean"


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


def champion_record(registered_model: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """`{"name", "version", "candidate", "data_version", "metrics"}` of the
    current champion, the shape `gate.decide` takes; None without one."""
    version = alias_version(registered_model, alias)
    if version is None:
        return None
    tags = dict(version.tags or {})
    return {
        "name": f"{registered_model}@{alias}",
        "version": str(version.version),
        "candidate": tags.get("candidate"),
        "data_version": tags.get("data_version"),
        "git_commit": tags.get("git_commit"),
        "run_id": version.run_id,
        "metrics": json.loads(tags.get(METRICS_TAG, "{}")),
    }


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
