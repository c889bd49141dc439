import json

import yaml
from typer.testing import CliRunner

from mtrec.cli import app


def test_train_and_evaluate_commands_write_models_and_reports(toy_processed_dir, tmp_path):
    params = {
        "paths": {
            "processed": str(toy_processed_dir),
            "reports": str(tmp_path / "reports"),
        },
        "recommender": {
            "backbones": ["gru4rec"],
            "seeds": [3],
            "gru4rec": {"max_history": 5, "dim": 8, "hidden_dim": 8},
            "guidances": ["none"],
            "train": {"max_epochs": 2, "batch_size": 8, "device": "cpu"},
        },
        "evaluate": {"ks": [5, 10], "device": "cpu"},
    }
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    runner = CliRunner()
    # --models explicitly: where candidates live by default is the lead's paths config.
    models = tmp_path / "models"
    trained = runner.invoke(
        app,
        ["train-recommender", "--backbone", "gru4rec", "--models", str(models)]
        + ["--params", str(params_file), "--no-progress"],
    )
    assert trained.exit_code == 0, trained.output
    assert "gru4rec-none seed 3" in trained.output
    assert (models / "gru4rec-none" / "seed_3" / "best" / "weights.pt").exists()
    assert (models / "gru4rec-none" / "train_summary.json").exists()
    evaluated = runner.invoke(
        app, ["evaluate", "--models", str(models), "--params", str(params_file)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert (tmp_path / "reports" / "plots" / "curves" / "gru4rec-none_seed3.csv").exists()
    report = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    metrics = report["candidates"]["gru4rec-none"]["seeds"]["3"]
    assert "NDCG@10" in metrics and "NDCG@20" not in metrics


def test_unknown_recommender_keys_are_rejected(toy_processed_dir, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"recommender": {"trian": {"max_epochs": 1}}}))
    result = CliRunner().invoke(
        app, ["train-recommender", "--backbone", "sasrec", "--params", str(params_file)]
    )
    # One line naming the key and the file, no traceback (a SystemExit, not a crash).
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "recommender.trian: unknown key (did you mean 'train'?)" in result.output
    assert str(params_file) in result.output and len(result.output.strip().splitlines()) == 1
