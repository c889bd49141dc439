"""The Prefect flow end to end on tiny synthetic data, under the session's
Prefect test harness, with real MLflow and BentoML stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_tracking_uri):
    """A working directory shaped like the project root (what a worker runs in)."""
    shutil.copy(ROOT / "bentofile.yaml", tmp_path / "bentofile.yaml")
    shutil.copytree(
        ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (tmp_path / "flows").mkdir()
    shutil.copy(ROOT / "flows" / "smoke_params.yaml", tmp_path / "flows" / "smoke_params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    return tmp_path


def test_smoke_flow_trains_gates_packages_and_caches(prefect_harness, project):
    import sys

    sys.path.insert(0, str(ROOT / "flows"))
    try:
        from pipeline import mtrec_pipeline
    finally:
        sys.path.remove(str(ROOT / "flows"))
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    result = mtrec_pipeline("flows/smoke_params.yaml")

    assert sorted(result["candidates"]) == ["sasrec-mtrec", "sasrec-none"]
    metrics = json.loads((project / "reports/smoke/metrics.json").read_text())
    for entry in metrics["candidates"].values():
        assert sorted(entry["seeds"]) == ["0", "1"]
        assert 0.0 <= entry["mean"]["NDCG@10"] <= 1.0
    gate = json.loads((project / "reports/smoke/gate.json").read_text())
    assert gate["action"] == result["gate"]
    assert gate["mlflow"]["pipeline_run_id"]
    # With no champion in this registry, a passing candidate is promoted and packaged.
    assert gate["action"] == "promote", gate["reason"]
    package = json.loads((project / "reports/smoke/package.json").read_text())
    assert package["candidate"] == gate["winner"]
    assert package["bento"].startswith("mtrec:")
    # The mental reward model was trained and travels with the champion.
    assert (project / "models/smoke/reward/sasrec/qnetwork/config.json").exists()
    assert (project / "models/smoke/reward/sasrec/irl/config.json").exists()  # -IRL ablation
    assert (project / "data/processed/smoke-rewards/sasrec.parquet").exists()
    assert package["has_reward_model"] is True

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mtrec-gate"]))
        )
    assert artifacts and "Gate: promote" in artifacts[0].data
    assert "sasrec-mtrec" in artifacts[0].data

    # Second run: training is cached (inputs + task source), nothing retrained.
    summary = project / "models/smoke/candidates/sasrec-none/train_summary.json"
    before = summary.stat().st_mtime_ns
    again = mtrec_pipeline("flows/smoke_params.yaml", package=False)
    assert summary.stat().st_mtime_ns == before
    assert sorted(again["candidates"]) == ["sasrec-mtrec", "sasrec-none"]
    # The same candidates again cannot beat themselves as champion: not promoted.
    assert again["gate"] in {"challenger", "none"}
