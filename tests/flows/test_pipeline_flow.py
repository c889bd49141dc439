"""The Prefect flow runs dvc.yaml's stages in a throwaway git + DVC repo on tiny
data, under the session's Prefect test harness, with real MLflow and BentoML."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e.test_dvc_pipeline import FIXTURES, TINY, deep_update

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dvc(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_tracking_uri):
    """A git + DVC repository shaped like the project root, with one commit
    (what a worker's checkout is), tiny params and a local-folder DVC remote."""
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("dvc.yaml", "bentofile.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["recommender"]["backbones"] = ["gru4rec"]
    params["recommender"]["seeds"] = [0]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    for key in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{key}_NAME", "mtrec-test")
        monkeypatch.setenv(f"{key}_EMAIL", "test@example.invalid")
    # The stage commands (`mtrec ...`) come from this environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "--default", "local", str(tmp_path / "dvc-remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny project")
    return repo


def load_flow():
    sys.path.insert(0, str(ROOT / "flows"))
    try:
        from pipeline import mtrec_pipeline
    finally:
        sys.path.remove(str(ROOT / "flows"))
    return mtrec_pipeline


def test_flow_runs_every_dvc_stage_records_and_pushes(prefect_harness, project, tmp_path):
    mtrec_pipeline = load_flow()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from mtrec.pipeline import plan

    result = mtrec_pipeline(str(project))

    stages = [stage.name for stage in plan(project)]
    assert "online_eval" in stages and "train_recommender@gru4rec-mtrec" in stages
    assert result["stages"] == {name: "ran" for name in stages}
    # A DVC run: dvc.lock records every stage and nothing is stale afterwards.
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(stages)
    assert "up to date" in dvc(project, "status")
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert set(metrics["candidates"]) == {"gru4rec-none", "gru4rec-mtrec"}
    assert "skipped" in json.loads((project / "reports/online.json").read_text())
    # Recorded as a DVC experiment, and pushed to the default remote.
    assert result["experiment"] and result["experiment"] in dvc(project, "exp", "list", "--all")
    assert result["remote"] == "local"
    assert any((tmp_path / "dvc-remote").rglob("*")), "dvc push wrote nothing to the remote"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mtrec-pipeline"]))
        )
    assert artifacts and "train_recommender@gru4rec-none" in artifacts[0].data

    # A second run: DVC finds everything up to date, nothing is retrained.
    summary = project / "models/candidates/gru4rec-none/train_summary.json"
    before = summary.stat().st_mtime_ns
    again = mtrec_pipeline(str(project), record=False, push=False)
    assert set(again["stages"].values()) == {"up to date"}
    assert summary.stat().st_mtime_ns == before


def test_a_failing_stage_fails_the_flow_naming_it(prefect_harness, project):
    mtrec_pipeline = load_flow()
    from mtrec.pipeline import StageFailed

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"] = {
        "source": "table",
        "path": str(FIXTURES / "bad_response_2.csv"),
        "columns": {c: c for c in ["user_id", "item_id", "timestamp", "response"]},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(StageFailed) as failure:
        mtrec_pipeline(str(project), record=False, push=False)
    assert failure.value.stage == "validate"
    assert "stage 'validate' failed" in str(failure.value)
    assert "response" in str(failure.value)  # the stage's own report, not just an exit code
    # Nothing downstream ran on the bad data.
    assert not (project / "data/processed/train.parquet").exists()
