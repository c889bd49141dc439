"""`mtrec gate` / `mtrec package` as dvc.yaml runs them (params.yaml in the working directory)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from mtrec.cli import app


def test_gate_command_writes_gate_json_and_refuses_what_it_cannot_register(
    tmp_path, monkeypatch, mlflow_tracking_uri
):
    monkeypatch.chdir(tmp_path)
    params = {
        "tracking": {
            "tracking_uri": mlflow_tracking_uri,
            "experiment": "cli-gate-test",
            "registered_model": "mtrec-recommender-cli-test",
        },
        "gate": {"min_relative_improvement": 0.1},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "reports").mkdir()
    metrics = {
        "candidates": {
            name: {
                "backbone": "gru4rec",
                "guidance": guidance,
                "seeds": {"0": {"NDCG_p@10": value, "AUC": 0.7, "NDCG@10": 0.2}},
                "mean": {"NDCG_p@10": value, "AUC": 0.7, "NDCG@10": 0.2},
                "std": {},
                "model_dirs": {},  # trained models are gone
            }
            for name, guidance, value in (
                ("gru4rec-none", "none", 0.10),
                ("gru4rec-mtrec", "mtrec", 0.12),
            )
        }
    }
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics))

    result = CliRunner().invoke(app, ["gate"])
    assert result.exit_code == 0, result.output
    gate = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert gate["winner"] == "gru4rec-mtrec"  # +20% > the 10% margin
    # ... but with no model to register, the decision says so instead of promoting nothing.
    assert gate["action"] == "none"
    assert "no model directory" in gate["reason"]
    assert "gate: none" in result.output

    # Nothing was promoted, so there is nothing to package: recorded, not built,
    # and the pipeline goes on (the gate's decision is not a failure).
    packaged = CliRunner().invoke(app, ["package"])
    assert packaged.exit_code == 0, packaged.output
    assert "package: skipped" in packaged.output
    package = json.loads((tmp_path / "reports" / "package.json").read_text())
    assert "no model under mtrec-recommender-cli-test@champion" in package["skipped"]
