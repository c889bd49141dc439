"""`mtrec gate` / `mtrec package` as dvc.yaml runs them (params.yaml in the working directory)."""

from __future__ import annotations

import json

import numpy as np
import yaml
from helpers import gate_candidate
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
    ranks = np.random.default_rng(0).integers(1, 30, 200).astype(float)
    metrics = {
        "candidates": {
            # Validation evidence, and no model folders: the trained models are gone.
            name: gate_candidate(
                "gru4rec", guidance, {0: r, 1: r}, extra_by_seed={0: {"AUC": 0.7}, 1: {"AUC": 0.7}}
            )
            for name, guidance, r in (
                ("gru4rec-none", "none", ranks),
                ("gru4rec-mtrec", "mtrec", np.maximum(1, ranks // 2)),
            )
        }
    }
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics))

    result = CliRunner().invoke(app, ["gate"])
    assert result.exit_code == 0, result.output
    gate = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert gate["winner"] == "gru4rec-mtrec"  # its interval's lower bound clears 10%
    assert gate["selection_split"] == "valid"
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
