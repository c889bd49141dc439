"""`dvc repro` of the real dvc.yaml in a throwaway git repo, on tiny data."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import pytest
import yaml
from common import deep_update

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# Overrides that make every stage run in seconds; stages added later extend this.
TINY = {
    "data": {"source": "ml-1m", "path": str(FIXTURES / "ml1m_ratings.dat")},
    "validate": {"k_core": 0, "min_positives_per_user": 3},
    "split": {"n_negatives": 2},
    "reward": {
        "encoders": {
            "gru4rec": {"max_history": 8, "dim": 8, "hidden_dim": 8},
            "sasrec": {"max_history": 8, "dim": 8, "n_heads": 1, "ffn_dim": 8},
        },
        "window": 16,
        "windows_per_batch": 4,
        "max_epochs": 1,
        "head_hidden": 8,
        "next_item_samples": 2,
    },
    "recommender": {
        "backbones": ["gru4rec", "sasrec"],
        "guidances": ["none", "mtrec"],
        "seeds": [0, 1],
        "gru4rec": {"max_history": 8, "dim": 8, "hidden_dim": 8},
        "sasrec": {"max_history": 8, "dim": 8, "n_layers": 1, "n_heads": 1, "ffn_dim": 8},
        "train": {"max_epochs": 2, "patience": 1},
    },
}


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def project(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copy(ROOT / "bentofile.yaml", repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_update(params, TINY)))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["BENTOML_HOME"] = str(tmp_path / "bentoml")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "mtrec-test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.invalid"
    run(["git", "init", "-q"], repo, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo, env)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo, env)
    shutil.copy(ROOT / ".dvcignore", repo)  # after `dvc init`, which writes its own
    shutil.copy(ROOT / ".gitignore", repo)
    return repo, env


@pytest.mark.slow
def test_dvc_repro_builds_processed_data_and_is_idempotent(project):
    repo, env = project
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["repro"], repo, env)
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert meta["n_users"] == 8
    assert meta["positives"] == {"train": 48, "valid": 8, "test": 8}
    assert json.loads((repo / "reports/validation.json").read_text())["passed"] is True
    # One reward model per backbone, each with its own read-out for its candidates.
    for backbone in ("gru4rec", "sasrec"):
        saved = json.loads((repo / f"models/reward/{backbone}/qnetwork/config.json").read_text())
        assert saved["backbone"]["kind"] == backbone
        assert (repo / f"data/processed/rewards/{backbone}.parquet").exists()
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics["candidates"]) == {
        f"{b}-{g}" for b in ("gru4rec", "sasrec") for g in ("none", "mtrec")
    }
    for candidate in metrics["candidates"].values():
        assert set(candidate["seeds"]) == {"0", "1"}
        assert 0.0 <= candidate["mean"]["AUC"] <= 1.0
    gate = json.loads((repo / "reports/gate.json").read_text())
    assert gate["action"] in {"promote", "challenger", "none"}
    assert "skipped" in json.loads((repo / "reports/online.json").read_text())
    if gate["action"] == "promote":
        assert json.loads((repo / "reports/package.json").read_text())["bento"]
    assert (repo / "dvc.lock").exists()
    again = run(dvc + ["repro"], repo, env)
    assert "Running stage" not in again
    status = run(dvc + ["status"], repo, env)
    assert "up to date" in status


@pytest.mark.slow
def test_dvc_repro_stops_on_bad_data_with_report(project):
    repo, env = project
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] = {"source": "table", "path": str(FIXTURES / "bad_response_2.csv")}
    params["data"]["columns"] = {c: c for c in ["user_id", "item_id", "timestamp", "response"]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "isin([0, 1])" in result.stdout + result.stderr
    report = json.loads((repo / "reports/validation.json").read_text())
    assert report["failures"][0]["column"] == "response"
    assert not (repo / "data/processed/train.parquet").exists()


def _lock_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


@pytest.mark.slow
def test_interrupted_repro_resumes_and_a_rerun_gives_the_same_bits(project):
    """issue 12: (1) an interrupted `dvc repro` resumes training where it stopped,
    although DVC deleted the stage's outputs before the rerun; (2) every stage's
    outputs are bit-identical when the stages run again in new processes (what two
    fresh clones do), so dvc.lock does not change."""
    repo, env = project
    dvc = [sys.executable, "-m", "dvc"]
    target = "train_recommender@gru4rec-mtrec"
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["recommender"].update(backbones=["gru4rec"], seeds=[0])
    params["recommender"]["train"].update(max_epochs=3, patience=5)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    # Killed after epoch 1: the testing knob reaches the stage command through its env.
    killed = subprocess.run(
        dvc + ["repro", target],
        cwd=repo,
        env=env | {"MTREC_STOP_AFTER_EPOCHS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode != 0
    assert "stopped after epoch 1" in killed.stdout + killed.stderr
    checkpoints = list((repo / ".mtrec-cache/checkpoints/gru4rec-mtrec").glob("*/seed_0/*.pt"))
    assert len(checkpoints) == 1

    resumed = run(dvc + ["repro", target], repo, env)
    assert "gru4rec-mtrec seed 0: resumed after epoch 1" in resumed
    metrics = (repo / "models/candidates/gru4rec-mtrec/seed_0/metrics.csv").read_text()
    assert [line.split(",")[0] for line in metrics.splitlines()[1:]] == ["1", "2", "3"]
    assert not (repo / ".mtrec-cache/checkpoints/gru4rec-mtrec").exists()
    first = _lock_outs(repo)
    assert "up to date" in run(dvc + ["status", "--with-deps", target], repo, env)

    # Everything again from scratch in new processes: the same bytes, hence the
    # same dvc.lock (the resumed candidate equals an uninterrupted run).
    again = run(dvc + ["repro", "--force", target], repo, env)
    assert "resumed" not in again
    assert _lock_outs(repo) == first
