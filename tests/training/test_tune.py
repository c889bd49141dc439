import json

import pytest
import torch

from mtrec.config import GRU4RecConfig, RecommenderConfig, TrainConfig
from mtrec.training.tune import tune_option


def test_tuning_trains_each_value_and_picks_the_best_on_validation(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = RecommenderConfig(
        seeds=(0,),
        gru4rec=GRU4RecConfig(max_history=6, dim=16, hidden_dim=16),
        train=TrainConfig(max_epochs=2, batch_size=4, learning_rate=0.01),
        guidance_options={"adt-rce": {"reweight_negatives": False}},
    )
    report = tune_option(
        config, "gru4rec", "adt-rce", "beta", [0.0, 0.5], toy_processed_dir, tmp_path, "NDCG@10"
    )
    assert [trial["beta"] for trial in report["trials"]] == [0.0, 0.5]
    scores = {t["beta"]: t["valid_mean"]["NDCG@10"] for t in report["trials"]}
    assert report["best"] == max(scores, key=scores.get)
    # Each value really trained with its option (and kept the others).
    for beta in (0.0, 0.5):
        saved = json.loads((tmp_path / f"beta={beta}" / "train_summary.json").read_text())
        assert saved["guidance"] == "adt-rce"
    # The suggestion is the tuned backbone's own override (merged over guidance_options).
    assert report["params"] == {
        "recommender": {
            "guidance_options_overrides": {"gru4rec": {"adt-rce": {"beta": report["best"]}}}
        }
    }
    assert json.loads((tmp_path / "tuning.json").read_text())["best"] == report["best"]
    # Only validation is read: the report has no test metric.
    assert "test" not in json.dumps(report).lower()


def test_tuning_names_a_missing_criterion(toy_processed_dir, tmp_path):
    config = RecommenderConfig(
        seeds=(0,),
        gru4rec=GRU4RecConfig(max_history=6, dim=8, hidden_dim=8),
        train=TrainConfig(max_epochs=1, batch_size=4),
    )
    with pytest.raises(KeyError, match="NOPE@10"):
        tune_option(
            config, "gru4rec", "adt-rce", "beta", [0.1], toy_processed_dir, tmp_path, "NOPE@10"
        )


def test_a_range_is_searched_by_tpe_logged_to_mlflow_and_resumes(
    toy_processed_dir, tmp_path, mlflow_tracking_uri
):
    import mlflow

    from mtrec.training.tune import SearchRange

    torch.set_num_threads(1)
    config = RecommenderConfig(
        seeds=(0,),
        gru4rec=GRU4RecConfig(max_history=6, dim=8, hidden_dim=8),
        train=TrainConfig(max_epochs=1, batch_size=4, learning_rate=0.01),
        guidance_options={"adt-rce": {"reweight_negatives": False}},
    )
    search = SearchRange(0.01, 1.0, n_trials=2, log=True)
    args = (config, "gru4rec", "adt-rce", "beta", None, toy_processed_dir, tmp_path, "NDCG@10")
    report = tune_option(
        *args, search=search, tracking_uri=mlflow_tracking_uri, experiment="tune-test"
    )
    betas = [trial["beta"] for trial in report["trials"]]
    assert len(betas) == 2 and all(0.01 <= b <= 1.0 for b in betas)
    assert report["sampler"] == "TPESampler"
    assert report["best"] in betas
    runs = mlflow.MlflowClient(mlflow_tracking_uri).search_runs(
        [mlflow.MlflowClient(mlflow_tracking_uri).get_experiment_by_name("tune-test").experiment_id]
    )
    assert sorted(float(run.data.params["beta"]) for run in runs) == sorted(betas)
    assert all("valid_NDCG_at_10" in run.data.metrics for run in runs)
    # The study is kept: asking for the same 2 trials again trains nothing new.
    again = tune_option(*args, search=search)
    assert [trial["beta"] for trial in again["trials"]] == betas


def test_values_and_a_range_are_exclusive(toy_processed_dir, tmp_path):
    from mtrec.training.tune import SearchRange

    config = RecommenderConfig(seeds=(0,))
    with pytest.raises(ValueError, match="either values"):
        tune_option(
            config,
            "gru4rec",
            "adt-rce",
            "beta",
            [0.1],
            toy_processed_dir,
            tmp_path,
            "NDCG@10",
            search=SearchRange(0.01, 1.0, 2),
        )
    with pytest.raises(ValueError, match="log-scale"):
        SearchRange(0.0, 1.0, 2, log=True)
