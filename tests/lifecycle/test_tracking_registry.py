"""MLflow tracking + registry through the gate step, on a session-shared SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from helpers import gate_candidate

from mtrec.config import GateConfig, TrackingConfig
from mtrec.lifecycle import registry, tracking
from mtrec.lifecycle.steps import run_gate

N_USERS = 200


def ranks(seed: int, shift: int = 0) -> np.ndarray:
    """Per-user ranks of the held-out positive; `shift` moves every target up."""
    base = np.random.default_rng(seed).integers(1, 30, N_USERS)
    return np.maximum(1, base - shift).astype(float)


def metrics_report(tiny_models, shifts: dict[str, dict[int, int]], auc: float = 0.8) -> dict:
    """sasrec-none / sasrec-mtrec with validation evidence from per-user ranks
    (`shifts[name][seed]`: how far each seed moves every target up)."""
    candidates = {
        name: gate_candidate(
            "sasrec",
            guidance,
            {seed: ranks(seed, shifts[name][seed]) for seed in (0, 1)},
            extra_by_seed={seed: {"AUC": auc} for seed in (0, 1)},
            model_dirs=tiny_models[name],
        )
        for name, guidance in (("sasrec-none", "none"), ("sasrec-mtrec", "mtrec"))
    }
    return {"split": "test", "candidates": candidates}


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(TrackingConfig(), tmp_path) == (
        f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.resolve_tracking_uri(TrackingConfig(), tmp_path) == "sqlite:///elsewhere.db"
    param = TrackingConfig(tracking_uri="http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri(param, tmp_path) == "http://127.0.0.1:5000"


def test_data_version_prefers_dvc_lock_and_falls_back_to_content(tmp_path):
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    (processed / "train.parquet").write_bytes(b"abc")
    by_content = tracking.data_version(processed)
    assert by_content.startswith("sha256:")
    (processed / "train.parquet").write_bytes(b"abd")
    assert tracking.data_version(processed) != by_content
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  split:\n    outs:\n    - path: "
        f"{processed.as_posix()}\n      md5: 0123abcd.dir\n"
    )
    assert tracking.data_version(processed, lock) == "dvc:0123abcd.dir"
    # The folder's files as separate outs (this project's dvc.yaml): one combined hash.
    per_file = "schema: '2.0'\nstages:\n  split:\n    outs:\n"
    for name, md5 in (("train.parquet", "aa"), ("test.parquet", "bb")):
        per_file += f"    - path: {processed.as_posix()}/{name}\n      md5: {md5}\n"
    lock.write_text(per_file)
    combined = tracking.data_version(processed, lock)
    assert combined.startswith("dvc-files:")
    lock.write_text(per_file.replace("md5: bb", "md5: bc"))
    assert tracking.data_version(processed, lock) != combined


def test_metric_keys_are_mlflow_safe():
    assert tracking.metric_key("NDCG_p@10") == "NDCG_p_at_10"
    assert tracking.loggable_metrics({"AUC": 0.7, "HR@5": float("nan"), "x": None}) == {"AUC": 0.7}


@pytest.mark.slow
def test_gate_step_logs_runs_registers_champion_then_keeps_a_worse_challenger(
    mlflow_tracking_uri, tiny_models, tmp_path
):
    config = TrackingConfig(
        tracking_uri=mlflow_tracking_uri,
        experiment="gate-step-test",
        registered_model="mtrec-recommender-gate-test",
    )
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "meta.json").write_text("{}")
    first = tmp_path / "metrics1.json"
    report = metrics_report(
        tiny_models, {"sasrec-none": {0: 0, 1: 0}, "sasrec-mtrec": {0: 8, 1: 6}}
    )
    first.write_text(json.dumps(report))
    gate_path = tmp_path / "reports" / "gate.json"

    models = tiny_models["models"]
    decision = run_gate(first, gate_path, GateConfig(), config, tmp_path, processed, models)
    assert decision["action"] == "promote" and decision["winner"] == "sasrec-mtrec"
    assert json.loads(gate_path.read_text())["registry"]["alias"] == "champion"

    champion = registry.champion_record(config.registered_model)
    assert champion["candidate"] == "sasrec-mtrec"
    valid_mean = report["candidates"]["sasrec-mtrec"]["valid"]["mean"]["NDCG_p@10"]
    assert champion["metrics"]["NDCG_p@10"] == pytest.approx(valid_mean)
    assert champion["data_version"] == tracking.data_version(processed)
    assert champion["evidence_split"] == "valid"

    # The runs: a parent with data version + commit, a child per candidate, seeds below.
    client = mlflow.MlflowClient(mlflow_tracking_uri)
    parent_id = decision["mlflow"]["pipeline_run_id"]
    parent = client.get_run(parent_id)
    assert parent.data.tags["data_version"] == champion["data_version"]
    assert parent.data.tags["gate.action"] == "promote"
    child_id = decision["mlflow"]["candidate_runs"]["sasrec-mtrec"]["run_id"]
    child = client.get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert child.data.metrics["NDCG_p_at_10.valid"] == pytest.approx(valid_mean)
    assert child.data.params["model.kind"] == "sasrec"
    seed_runs = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{child_id}'"
    )
    assert len(seed_runs) == 2
    curve = client.get_metric_history(seed_runs[0].info.run_id, "valid_loss")
    assert [m.step for m in curve] == [1, 2]

    # The registered model loads back as the real torch module.
    loaded = mlflow.pyfunc.load_model(f"models:/{config.registered_model}@champion")
    module = loaded.unwrap_python_model().runtime.model
    assert module.kind == "sasrec" and module.n_items == 30
    assert loaded.unwrap_python_model().runtime.reward_network is not None
    prediction = loaded.predict(
        __import__("pandas").DataFrame({"history": [["m1", "m2"]], "k": [4]})
    )
    assert len(prediction["items"][0]) == 4

    # A degraded second round: never promoted, becomes challenger; champion unchanged.
    second = tmp_path / "metrics2.json"
    worse = {"sasrec-none": {0: 0, 1: 0}, "sasrec-mtrec": {0: 4, 1: 3}}
    second.write_text(json.dumps(metrics_report(tiny_models, worse)))
    decision2 = run_gate(second, gate_path, GateConfig(), config, tmp_path, processed)
    assert decision2["winner"] is None and decision2["action"] == "challenger"
    beats = next(
        r for r in decision2["candidates"]["sasrec-mtrec"]["rules"] if r["rule"] == "beats_champion"
    )
    assert beats["interval"]["upper"] < 0, beats["message"]  # stored evidence, paired
    assert registry.champion_record(config.registered_model)["version"] == champion["version"]
    challenger = registry.champion_record(config.registered_model, registry.CHALLENGER)
    assert challenger["candidate"] == "sasrec-mtrec"
    assert challenger["version"] != champion["version"]
    assert Path(gate_path).exists()


def test_history_is_logged_per_epoch_in_batches(tmp_path, mlflow_tracking_uri):
    """Every numeric column of every epoch row, at step = epoch, as per-row
    `mlflow.log_metrics` would: NaN and non-numbers left out, '@' renamed, and
    more metrics than one MLflow batch holds (1000) all arrive."""
    config = TrackingConfig(tracking_uri=mlflow_tracking_uri, experiment="history-batches")
    tracking.configure_tracking(config, tmp_path)
    rows = [
        {"epoch": epoch, "train_loss": 1.0 / epoch, "valid_NDCG@10": 0.1 * epoch, "note": "x"}
        | {f"extra_{k}": float(epoch * k) for k in range(40)}
        | ({"valid_AUC": float("nan")} if epoch == 2 else {"valid_AUC": 0.5 + epoch / 100})
        for epoch in range(1, 31)
    ]
    with tracking.pipeline_run("v", "c") as run:
        assert tracking.log_history(rows) == 30
    client = mlflow.MlflowClient()
    assert sum(len(tracking.loggable_metrics(r)) - 1 for r in rows) > tracking.METRICS_PER_BATCH
    history = client.get_metric_history(run.info.run_id, "valid_NDCG_at_10")
    assert [(m.step, m.value) for m in history] == [(e, 0.1 * e) for e in range(1, 31)]
    auc = client.get_metric_history(run.info.run_id, "valid_AUC")
    assert [m.step for m in auc] == [e for e in range(1, 31) if e != 2]
    extra = client.get_metric_history(run.info.run_id, "extra_39")
    assert [(m.step, m.value) for m in extra] == [(e, float(e * 39)) for e in range(1, 31)]
    latest = client.get_run(run.info.run_id).data.metrics
    assert "note" not in latest and "epoch" not in latest
    assert latest["train_loss"] == pytest.approx(1.0 / 30)


def test_history_needs_an_active_run(tmp_path, mlflow_tracking_uri):
    config = TrackingConfig(tracking_uri=mlflow_tracking_uri, experiment="history-batches")
    tracking.configure_tracking(config, tmp_path)
    with pytest.raises(RuntimeError, match="active MLflow run"):
        tracking.log_history([{"epoch": 1, "loss": 1.0}])
