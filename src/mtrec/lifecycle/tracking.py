"""MLflow tracking: where runs go, what identifies them, what each run holds.

Layout of one pipeline execution:

    parent run  "pipeline"          tags: data_version, git_commit; the reward
    │                               model, the gate decision, metrics.json
    ├── child run  "<candidate>"    params, test mean/std metrics, validation ones
    │   │                           (<metric>.valid), the logged model of the seed the
    │   │                           gate chose, gate_evidence/valid_per_user.json
    │   └── grandchild "seed=<s>"   that seed's metrics and per-epoch curves

Nothing here runs at import time; `configure_tracking` sets the URI explicitly.
Reports and artifacts show the URI through `public_tracking_uri` (no credentials).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pandas as pd

from mtrec.config import TrackingConfig

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
MODEL_PIP_REQUIREMENTS = ["torch", "numpy", "pandas", "pydantic", "mlflow"]
HISTORY_FILES = ("history.csv", "history.json")


def resolve_tracking_uri(config: TrackingConfig, project_root: Path) -> str:
    """The param, else $MLFLOW_TRACKING_URI, else sqlite:///<project_root>/mlflow.db."""
    if config.tracking_uri:
        return config.tracking_uri
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return f"sqlite:///{(Path(project_root) / DEFAULT_DB).resolve()}"


def public_tracking_uri(uri: str, project_root: Path | None = None) -> str:
    """The tracking URI as reports and artifacts may show it: no user, password
    or token (userinfo, query and fragment are dropped), and a SQLite database
    inside the project as a path relative to it."""
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        path = parts.path.removeprefix("/")
        if project_root is not None and path:
            with contextlib.suppress(ValueError):
                path = Path(path).resolve().relative_to(Path(project_root).resolve()).as_posix()
        return f"sqlite:///{path}"
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # e.g. databricks://<scope>:<prefix>, a secret reference
        port = None
    if port is not None:
        host += f":{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (query dropped), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(urlsplit(tracking_uri).path.removeprefix("/"))


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database (`mlartifacts/`);
    for a tracking server the server decides (None)."""
    database = sqlite_database(tracking_uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts").resolve().as_uri()


def _relocate_experiment(tracking_uri: str, experiment_id: str, location: str) -> None:
    """Point a SQLite store's experiment at `location`. MLflow stores an
    experiment's artifact root as an absolute path when it creates it and has
    no API to change it, so a copied or moved project would keep writing into
    the original's folder: this updates that one column of that one row."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(tracking_uri)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "UPDATE experiments SET artifact_location = :location "
                    "WHERE experiment_id = :experiment_id"
                ),
                {"location": location, "experiment_id": int(experiment_id)},
            )
    finally:
        engine.dispose()


def _local_path(location: str) -> Path | None:
    """The folder of a local artifact location (path or file: URI), else None."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path)).resolve()
    if parts.scheme == "" or len(parts.scheme) == 1:  # a plain path ("C:" on Windows)
        return Path(location).resolve()
    return None


def configure_tracking(config: TrackingConfig, project_root: Path) -> str:
    """Point MLflow (tracking and registry) at the configured store and make
    sure the experiment exists. Returns the experiment id.

    With a SQLite store the experiment's artifacts always go to `mlartifacts/`
    beside the database: an experiment whose local artifact root is elsewhere
    (the project folder was copied or moved) is pointed back there, so a copy
    never writes into the original's folder."""
    import mlflow

    uri = resolve_tracking_uri(config, project_root)
    # mlflow.set_tracking_uri also exports $MLFLOW_TRACKING_URI; keep the
    # user's value (or its absence), so the next project configured in this
    # process resolves its own store, not this one.
    given = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if given is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = given
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    wanted = artifact_location(uri)
    if experiment is None:
        experiment_id = client.create_experiment(config.experiment, artifact_location=wanted)
    else:
        experiment_id = experiment.experiment_id
        current = experiment.artifact_location
        here = _local_path(current)
        if wanted is not None and here is not None and here != _local_path(wanted):
            log.warning(
                "experiment %r kept its artifacts at %s, outside this store's folder "
                "(the project was copied or moved): new runs write to %s",
                config.experiment,
                current,
                wanted,
            )
            _relocate_experiment(uri, experiment_id, wanted)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# --- what identifies a run ------------------------------------------------------


def hash_folder(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under `folder`."""
    digest = hashlib.sha256()
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(folder) if file != folder else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def data_version(processed_dir: Path, dvc_lock: Path | None = None) -> str:
    """DVC's hash of the processed data from dvc.lock when it records it
    ("dvc:<md5>"), else a content hash of the folder ("sha256:<hex>")."""
    processed_dir = Path(processed_dir)
    if dvc_lock is not None and Path(dvc_lock).exists():
        import yaml

        lock = yaml.safe_load(Path(dvc_lock).read_text()) or {}
        wanted = processed_dir.as_posix().rstrip("/")
        inside: list[tuple[str, str]] = []
        for stage in (lock.get("stages") or {}).values():
            for out in stage.get("outs") or []:
                path = str(out.get("path", "")).rstrip("/")
                if path == wanted and out.get("md5"):
                    return f"dvc:{out['md5']}"
                if path.startswith(wanted + "/") and out.get("md5"):
                    inside.append((path, str(out["md5"])))
        if inside:
            # The folder's files are separate outs: one hash over their DVC hashes.
            combined = hashlib.sha256(json.dumps(sorted(inside)).encode()).hexdigest()
            return f"dvc-files:{combined}"
    if not processed_dir.exists():
        return "unknown"
    return f"sha256:{hash_folder(processed_dir)}"


def git_commit(project_root: Path) -> str:
    """HEAD's commit, with "-dirty" when tracked files changed; "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


# --- names and values MLflow accepts ------------------------------------------------

_METRIC_NAME = re.compile(r"[^0-9A-Za-z_\-. /]")


def metric_key(name: str) -> str:
    """MLflow metric names cannot hold '@': `NDCG_p@10` -> `NDCG_p_at_10`."""
    return _METRIC_NAME.sub("_", name.replace("@", "_at_"))


def loggable_metrics(metrics: Mapping[str, Any], suffix: str = "") -> dict[str, float]:
    """Finite numbers only (NaN/None are recorded in the JSON reports instead)."""
    out = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            out[metric_key(name) + suffix] = float(value)
    return out


def flatten_params(nested: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten_params(value, prefix=f"{name}.")
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


def read_history(model_dir: Path) -> list[dict[str, float]]:
    """Per-epoch rows a trainer wrote beside its model: history.csv/.json in the
    model folder, or metrics.csv one level up (the training loop's `best/`)."""
    candidates = [Path(model_dir) / name for name in HISTORY_FILES]
    candidates.append(Path(model_dir).parent / "metrics.csv")
    for file in candidates:
        if file.exists():
            if file.suffix == ".csv":
                return pd.read_csv(file).to_dict("records")
            rows = json.loads(file.read_text())
            return rows.get("history", []) if isinstance(rows, dict) else rows
    return []


# MLflow's limit on metrics in one log_batch call.
METRICS_PER_BATCH = 1000


def log_history(rows: list[Mapping[str, Any]]) -> int:
    """Log every numeric column of each epoch row with step = epoch, into the
    active run. Returns rows logged.

    In batches of up to METRICS_PER_BATCH metrics: what `mlflow.log_metrics`
    per row would store (keys, values, steps; no model or dataset link unless a
    model is active), without its one run lookup and one database transaction
    per epoch row (~15 ms each on SQLite; 146 rows in the default job's gate)."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_history logs into the active MLflow run: start one first")
    run_id = run.info.run_id
    model_id = mlflow.get_active_model_id()
    timestamp = get_current_time_millis()
    metrics = []
    for position, row in enumerate(rows):
        step = int(row.get("epoch", position))
        values = loggable_metrics({k: v for k, v in row.items() if k != "epoch"})
        metrics.extend(
            Metric(key, value, timestamp, step, model_id=model_id, run_id=run_id)
            for key, value in values.items()
        )
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
    return len(rows)


# --- runs -----------------------------------------------------------------------------


@contextlib.contextmanager
def pipeline_run(
    data_version_tag: str, commit: str, run_name: str = "pipeline", tags: Mapping | None = None
) -> Iterator[Any]:
    """The parent run of one pipeline execution (call `configure_tracking` first)."""
    import mlflow

    all_tags = {"mtrec.kind": "pipeline", "data_version": data_version_tag, "git_commit": commit}
    with mlflow.start_run(run_name=run_name, tags=all_tags | dict(tags or {})) as run:
        yield run


def log_reward_model(
    reward_dir: Path, summary: Mapping[str, Any] | None = None, backbone: str | None = None
) -> None:
    """The mental reward model (of `backbone`'s candidates) as artifacts
    (`reward_model/`) of a nested run, its per-epoch curves, and any summary
    metrics (e.g. recovery AUC)."""
    import mlflow

    reward_dir = Path(reward_dir)
    tags = {"mtrec.kind": "reward", "backbone": str(backbone)}
    name = f"reward_model {backbone}" if backbone else "reward_model"
    with mlflow.start_run(run_name=name, nested=True, tags=tags):
        description = json.loads((reward_dir / "config.json").read_text())
        mlflow.log_params(flatten_params(description.get("metadata", {}).get("reward", {})))
        mlflow.log_params({"n_quantiles": description.get("n_quantiles")})
        log_history(read_history(reward_dir))
        if summary:
            mlflow.log_metrics(loggable_metrics(summary))
        mlflow.log_artifacts(str(reward_dir), artifact_path="reward_model")


PER_USER_ARTIFACT = "gate_evidence/valid_per_user.json"


def chosen_seed(candidate: Mapping[str, Any], representative: str | None = None) -> str | None:
    """The seed whose model represents the candidate in the registry: the one
    the gate chose (`representative`, the lower median by validation primary),
    else the lowest seed (a candidate the gate could not judge; never registered)."""
    model_dirs = candidate.get("model_dirs") or {}
    if not model_dirs:
        return None
    if representative is not None and representative in model_dirs:
        return representative
    return min(model_dirs, key=lambda seed: (int(seed) if str(seed).isdigit() else 0, str(seed)))


def log_candidate(
    name: str,
    candidate: Mapping[str, Any],
    project_root: Path,
    reward_dir: Path | None = None,
    log_all_seeds: bool = False,
    representative: str | None = None,
    per_user_evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One child run per candidate (grandchildren per seed). Logs the
    `representative` seed's model as an MLflow pyfunc and the per-user
    validation evidence; returns the run id, model URI, seed and evidence URI."""
    import mlflow

    from mtrec.lifecycle.pyfunc import log_recommender

    paths = candidate.get("model_dirs") or {}
    model_dirs = {seed: Path(project_root) / path for seed, path in paths.items()}
    representative = chosen_seed(candidate, representative)
    tags = {
        "mtrec.kind": "candidate",
        "candidate": name,
        "backbone": str(candidate.get("backbone")),
        "guidance": str(candidate.get("guidance")),
    }
    valid = candidate.get("valid") or {}
    with mlflow.start_run(run_name=name, nested=True, tags=tags) as run:
        mlflow.log_param("seeds", json.dumps(sorted(candidate.get("seeds") or {})))
        if representative is not None and (model_dirs[representative] / "config.json").exists():
            description = json.loads((model_dirs[representative] / "config.json").read_text())
            mlflow.log_params(flatten_params(description.get("model_config", {}), "model."))
            metadata = description.get("metadata") or {}
            mlflow.log_params(flatten_params(metadata, "meta."))
        # Test metrics under their names (for the record); the validation metrics
        # the gate chose on as <metric>.valid (valid_<metric> are training curves).
        mlflow.log_metrics(loggable_metrics(candidate.get("mean") or {}))
        mlflow.log_metrics(loggable_metrics(candidate.get("std") or {}, suffix=".std"))
        mlflow.log_metrics(loggable_metrics(valid.get("mean") or {}, suffix=".valid"))
        mlflow.log_metrics(loggable_metrics(valid.get("std") or {}, suffix=".valid.std"))
        mlflow.log_dict(dict(candidate), "candidate_metrics.json")
        evidence_uri = None
        if per_user_evidence is not None:
            mlflow.log_dict(dict(per_user_evidence), PER_USER_ARTIFACT)
            evidence_uri = f"runs:/{run.info.run_id}/{PER_USER_ARTIFACT}"

        valid_seeds = valid.get("seeds") or {}
        for seed, seed_metrics in sorted((candidate.get("seeds") or {}).items()):
            with mlflow.start_run(run_name=f"{name} seed={seed}", nested=True, tags=tags):
                mlflow.log_param("seed", seed)
                mlflow.log_metrics(loggable_metrics(seed_metrics or {}))
                mlflow.log_metrics(loggable_metrics(valid_seeds.get(seed) or {}, suffix=".valid"))
                seed_dir = model_dirs.get(seed)
                if seed_dir is not None and seed_dir.exists():
                    log_history(read_history(seed_dir))
                    for folder in (seed_dir, seed_dir.parent):
                        for extra in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.png")):
                            mlflow.log_artifact(str(extra), artifact_path="curves")
                    if log_all_seeds and seed != representative:
                        log_recommender(seed_dir, reward_dir, artifact_name="model")

        model_uri = None
        if representative is not None and model_dirs[representative].exists():
            info = log_recommender(model_dirs[representative], reward_dir, artifact_name="model")
            model_uri = info.model_uri
            mlflow.set_tag("registered_seed", representative)
    return {
        "run_id": run.info.run_id,
        "model_uri": model_uri,
        "seed": representative,
        "evidence_uri": evidence_uri,
    }
