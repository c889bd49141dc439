import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.config import (
    DINConfig,
    EvaluateConfig,
    GRU4RecConfig,
    RecommenderConfig,
    SASRecConfig,
    TrainConfig,
)
from mtrec.data.processed import load_processed
from mtrec.evaluation.evaluate import (
    evaluate_candidates,
    exposure_probabilities,
    split_windows,
)
from mtrec.models import load_model
from mtrec.training import TrainingStopped, train_recommender
from mtrec.training.recommender import attach_exposure_columns


def _config(**train) -> RecommenderConfig:
    defaults = dict(max_epochs=3, batch_size=4, learning_rate=0.01, patience=5)
    return RecommenderConfig(
        seeds=(0,),
        sasrec=SASRecConfig(max_history=6, dim=16, n_layers=1, ffn_dim=32, dropout=0.3),
        gru4rec=GRU4RecConfig(max_history=6, dim=16, hidden_dim=16, dropout=0.3),
        din=DINConfig(max_history=6, dim=16, attention_hidden=8, mlp_hidden=(16,), dropout=0.3),
        train=TrainConfig(**(defaults | train)),
    )


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
def test_training_learns_the_planted_signal(backbone, toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = _config(max_epochs=4)
    summary = train_recommender(config, backbone, "none", toy_processed_dir, tmp_path / "c")
    history = pd.read_csv(summary["seeds"]["0"]["metrics_csv"])
    assert len(history) == 4
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    valid = summary["seeds"]["0"]["valid"]
    assert valid["AUC"] > 0.7
    # 24 items, half of them liked: a random ranking gives NDCG@10 of about 0.2.
    assert valid["NDCG@10"] > 0.3
    best_epoch = summary["seeds"]["0"]["best_epoch"]
    assert valid["NDCG@10"] == pytest.approx(history["valid_NDCG@10"].max())
    assert history["valid_NDCG@10"].iloc[best_epoch - 1] == pytest.approx(valid["NDCG@10"])


def _weights(path):
    return torch.load(path / "weights.pt", weights_only=True)


def test_a_killed_run_resumes_to_the_uninterrupted_result(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    whole = train_recommender(_config(), "sasrec", "none", toy_processed_dir, tmp_path / "whole")
    # stop_after_epochs is not a setting of the run: the resumed call below (without
    # it) continues this checkpoint.
    with pytest.raises(TrainingStopped):
        train_recommender(
            _config(), "sasrec", "none", toy_processed_dir, tmp_path / "killed", stop_after_epochs=1
        )
    partial = pd.read_csv(tmp_path / "killed" / "seed_0" / "metrics.csv")
    assert len(partial) == 1

    calls = []

    def crash_after_second_epoch(epoch, record):
        calls.append(epoch)
        if epoch == 2:
            raise KeyboardInterrupt  # a kill from outside, after the checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_recommender(
            _config(),
            "sasrec",
            "none",
            toy_processed_dir,
            tmp_path / "killed",
            callbacks=[crash_after_second_epoch],
        )
    assert calls == [2]  # resumed after epoch 1
    resumed = train_recommender(_config(), "sasrec", "none", toy_processed_dir, tmp_path / "killed")

    a, b = whole["seeds"]["0"], resumed["seeds"]["0"]
    assert a["best_epoch"] == b["best_epoch"]
    assert a["valid"] == b["valid"]
    # metrics.csv holds no wall-clock values: the resumed run's file is byte-identical.
    assert Path(a["metrics_csv"]).read_bytes() == Path(b["metrics_csv"]).read_bytes()
    assert "train_seconds" in pd.read_csv(Path(b["metrics_csv"]).with_name("timing.csv"))
    for name, tensor in _weights(tmp_path / "whole" / "seed_0" / "best").items():
        assert torch.equal(tensor, _weights(tmp_path / "killed" / "seed_0" / "best")[name]), name
    # A finished run is not trained again.
    again = train_recommender(_config(), "sasrec", "none", toy_processed_dir, tmp_path / "killed")
    assert again["seeds"]["0"]["valid"] == b["valid"]


def test_evaluate_candidates_reports_every_metric(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = _config(max_epochs=4)
    models = tmp_path / "models"
    for backbone in ("gru4rec", "din"):
        train_recommender(
            config, backbone, "none", toy_processed_dir, models / f"{backbone}-none", seeds=[0, 1]
        )
    reports = tmp_path / "reports"
    config = EvaluateConfig(device="cpu")
    report = evaluate_candidates(config, toy_processed_dir, models, reports, progress=False)
    assert set(report["candidates"]) == {"gru4rec-none", "din-none"}
    entry = json.loads((tmp_path / "reports" / "candidates" / "din-none.json").read_text())
    on_disk = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert on_disk["candidates"]["din-none"] == entry
    assert set(entry["seeds"]) == {"0", "1"}
    for key in (
        "AUC",
        "GAUC",
        "NCIS",
        "NCIS_lift",
        "HR@5",
        "NDCG@10",
        "MRR@20",
        "HR_p@10",
        "NDCG_p@10",
        "HR_n@10",
        "NDCG_n@10",
        "dNDCG@10",
    ):
        assert key in entry["mean"] and key in entry["std"], key
    seeds = [entry["seeds"][s]["NDCG@10"] for s in ("0", "1")]
    assert entry["mean"]["NDCG@10"] == pytest.approx(sum(seeds) / 2)
    data = load_processed(toy_processed_dir)
    assert entry["seeds"]["0"]["n_users"] == data.n_users
    assert entry["seeds"]["0"]["n_exposures"] == len(data.test)
    # The trained model beats its own untrained start on the exposures.
    assert entry["mean"]["AUC"] > 0.7
    assert load_model(entry["model_dirs"]["0"], device="cpu").kind == "din"


def test_attach_exposure_columns_checks_the_keys(toy_processed_dir):
    train = load_processed(toy_processed_dir).train
    rewards = pd.DataFrame(
        {
            "split": "train",
            "split_row": range(len(train))[::-1],
            "user_idx": train["user_idx"].to_numpy()[::-1],
            "item_idx": train["item_idx"].to_numpy()[::-1],
            "reward_pos_mean_z": range(len(train))[::-1],
        }
    )
    joined = attach_exposure_columns(train, "train", rewards, ["reward_pos_mean_z"])
    assert joined["reward_pos_mean_z"].tolist() == list(range(len(train)))
    with pytest.raises(ValueError, match="one to one"):
        attach_exposure_columns(train, "train", rewards.iloc[1:], ["reward_pos_mean_z"])
    shuffled = rewards.assign(item_idx=rewards["item_idx"].sample(frac=1, random_state=0).values)
    with pytest.raises(ValueError, match="item_idx"):
        attach_exposure_columns(train, "train", shuffled, ["reward_pos_mean_z"])


def test_a_changed_config_starts_afresh_instead_of_resuming(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "c"
    train_recommender(_config(max_epochs=2), "gru4rec", "none", toy_processed_dir, out)
    changed = _config(max_epochs=1, learning_rate=0.002)
    summary = train_recommender(changed, "gru4rec", "none", toy_processed_dir, out)
    history = pd.read_csv(summary["seeds"]["0"]["metrics_csv"])
    assert history["epoch"].tolist() == [1]
    assert summary["seeds"]["0"]["best_epoch"] == 1


def test_train_overrides_give_one_backbone_its_own_recipe(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = _config(max_epochs=2).model_copy(
        update={"train_overrides": {"sasrec": {"max_epochs": 1}}}
    )
    config = RecommenderConfig.model_validate(config.model_dump())  # validated as from params
    assert config.train_for("sasrec").max_epochs == 1
    assert config.train_for("gru4rec") == config.train
    for backbone, epochs in (("sasrec", [1]), ("gru4rec", [1, 2])):
        summary = train_recommender(
            config, backbone, "none", toy_processed_dir, tmp_path / backbone
        )
        assert pd.read_csv(summary["seeds"]["0"]["metrics_csv"])["epoch"].tolist() == epochs
    with pytest.raises(ValueError, match="patiance"):
        RecommenderConfig.model_validate({"train_overrides": {"sasrec": {"patiance": 10}}})
    with pytest.raises(ValueError):
        RecommenderConfig.model_validate({"train_overrides": {"bert4rec": {"patience": 10}}})


def test_a_loss_with_its_own_parameters_is_optimised_and_checkpointed(toy_processed_dir, tmp_path):
    """PNFRec's loss owns a negative encoder (and reads `rating`, which the
    toy training exposures carry): the loop must train and checkpoint it."""
    torch.set_num_threads(1)
    config = _config(max_epochs=2)
    summary = train_recommender(config, "sasrec", "pnfrec", toy_processed_dir, tmp_path / "p")
    assert summary["seeds"]["0"]["epochs_run"] == 2
    checkpoint = torch.load(
        tmp_path / "p" / "seed_0" / "checkpoint.pt", map_location="cpu", weights_only=True
    )
    assert checkpoint["loss"], "the loss's own parameters are not in the checkpoint"
    assert load_model(summary["seeds"]["0"]["model_dir"], device="cpu").kind == "sasrec"


def _even_minus_odd(config, guidance, processed_dir, out_root, rewards_path) -> float:
    """Train `gru4rec-<guidance>` on the toy data; mean test click probability of
    even items minus odd ones."""
    data = load_processed(processed_dir)
    summary = train_recommender(
        config, "gru4rec", guidance, processed_dir, out_root / guidance, rewards_path=rewards_path
    )
    model = load_model(summary["seeds"]["0"]["model_dir"], device="cpu")
    windows = split_windows(data, "test", model.max_history)
    probs = exposure_probabilities(model, windows, 64, torch.device("cpu"))
    test_even = (data.test["item_idx"] % 2 == 0).to_numpy()
    return probs[test_even].mean() - probs[~test_even].mean()


@pytest.mark.parametrize(
    "guidance, options",
    [("mtrec", {"beta": 2.0}), ("mtrec-cvar", {"beta": 2.0, "q": 0.5})],
    ids=["mtrec", "mtrec-cvar-q"],
)
def test_alignment_guidance_reads_rewards_and_moves_the_model(
    toy_processed_dir, tmp_path, guidance, options
):
    """The `mtrec` guidance (registered by mtrec.reward) gets r(s,1), r(s,0)
    joined from a rewards table by (split, split_row); rewarding even items
    raises their predicted click probability relative to the BCE-only model.
    `mtrec-cvar` with a q of its own derives its columns from the quantiles."""
    torch.set_num_threads(1)
    data = load_processed(toy_processed_dir)
    train = data.train
    even = (train["item_idx"] % 2 == 0).to_numpy()
    rewards = pd.DataFrame(
        {
            "split": "train",
            "split_row": range(len(train)),
            "user_idx": train["user_idx"],
            "item_idx": train["item_idx"],
            "reward_pos_mean_z": np.where(even, 2.0, -2.0),
            "reward_neg_mean_z": 0.0,
            "reward_pos_q01": np.where(even, 1.0, -3.0),
            "reward_pos_q02": np.where(even, 3.0, -1.0),
            "reward_neg_q01": 0.0,
            "reward_neg_q02": 0.0,
        }
    )
    rewards_path = tmp_path / "rewards.parquet"
    rewards.to_parquet(rewards_path)
    config = _config(max_epochs=3).model_copy(update={"guidance_options": {guidance: options}})

    def even_minus_odd(guidance):
        return _even_minus_odd(config, guidance, toy_processed_dir, tmp_path, rewards_path)

    guided, unguided = even_minus_odd(guidance), even_minus_odd("none")
    assert guided > unguided + 0.3


def test_proxy_continuation_guidance_favours_items_users_went_on_after(toy_processed_dir, tmp_path):
    """`proxy-continuation` derives its reward from the read-out table's log: when
    users go on after clicking even items and leave after odd ones, the guided model
    raises even items relative to the BCE-only model (and reads no label)."""
    torch.set_num_threads(1)
    data = load_processed(toy_processed_dir)
    train = data.train.sort_values(["user_idx", "timestamp"], kind="stable")
    even = (train["item_idx"] % 2 == 0).to_numpy()
    # Re-time each user's log: the next exposure 10 s after an even item, a day after
    # an odd one (each row's time is the sum of the gaps before it).
    gaps = pd.Series(np.where(even, 10, 86_400), index=train.index)
    timestamps = (gaps.groupby(train["user_idx"]).cumsum() - gaps).to_numpy()
    table = pd.DataFrame(
        {
            "split": "train",
            "split_row": train.index.to_numpy(),
            "user_idx": train["user_idx"].to_numpy(),
            "item_idx": train["item_idx"].to_numpy(),
            "timestamp": timestamps,
            "response": train["response"].to_numpy(),
        }
    )
    rewards_path = tmp_path / "rewards.parquet"
    table.to_parquet(rewards_path)
    config = _config(max_epochs=3).model_copy(
        update={"guidance_options": {"proxy-continuation": {"beta": 2.0, "prior_count": 0.0}}}
    )

    def even_minus_odd(guidance):
        return _even_minus_odd(config, guidance, toy_processed_dir, tmp_path, rewards_path)

    guided, unguided = even_minus_odd("proxy-continuation"), even_minus_odd("none")
    assert guided > unguided + 0.3


def test_a_guidance_may_not_train_on_ratings_unless_registered_to(
    toy_processed_dir, tmp_path, monkeypatch
):
    from mtrec.training import losses

    class ReadsRatings(losses.BCELoss):
        required_columns = ("rating",)

    # The test's guidance lives in copies of the registry, gone after the test.
    monkeypatch.setattr(losses, "GUIDANCES", dict(losses.GUIDANCES))
    monkeypatch.setattr(losses, "SATISFACTION_GUIDANCES", set(losses.SATISFACTION_GUIDANCES))

    def build(options, context):
        return ReadsRatings(context)

    # A new guidance that asks for the rating column: refused (ratings are for evaluation).
    losses.register_guidance("test-reads-ratings")(build)
    with pytest.raises(ValueError, match="may not train on satisfaction columns"):
        train_recommender(_config(), "gru4rec", "test-reads-ratings", toy_processed_dir, tmp_path)
    # Registered as a baseline that does, as its paper did: it trains.
    losses.register_guidance("test-reads-ratings", trains_on_satisfaction=True)(build)
    summary = train_recommender(
        _config(max_epochs=1), "gru4rec", "test-reads-ratings", toy_processed_dir, tmp_path
    )
    assert summary["guidance"] == "test-reads-ratings"


def _linear_output_dtypes(model, run) -> set[torch.dtype]:
    """dtypes of every nn.Linear's output while `run()` executes."""
    seen: set[torch.dtype] = set()
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
        for module in model.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("precision, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_training_steps_arithmetic(precision, expected, toy_processed_dir):
    from mtrec.data.sequences import build_windows
    from mtrec.models import build_model
    from mtrec.training.loop import autocast

    data = load_processed(toy_processed_dir)
    config = _config(precision=precision)
    model = build_model(config.backbone_config("sasrec"), data.n_items)
    batch = build_windows(data.train, 6)
    device = torch.device("cpu")

    def forward():
        with autocast(device, config.train.precision):
            model(batch.positives, batch.items, batch.state_index)

    assert _linear_output_dtypes(model, forward) == {expected}


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
def test_bf16_training_learns_the_planted_signal(backbone, toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    config = _config(max_epochs=4, precision="bf16")
    summary = train_recommender(config, backbone, "none", toy_processed_dir, tmp_path / "c")
    history = pd.read_csv(summary["seeds"]["0"]["metrics_csv"])
    assert np.isfinite(history["train_loss"]).all()
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    valid = summary["seeds"]["0"]["valid"]
    assert valid["AUC"] > 0.7
    assert valid["NDCG@10"] > 0.3
    # fp32 weights in the saved model, whatever the step's arithmetic.
    model = load_model(summary["seeds"]["0"]["model_dir"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_cuda(precision, toy_processed_dir, tmp_path):
    config = _config(max_epochs=4, device="cuda", precision=precision)
    summary = train_recommender(config, "sasrec", "none", toy_processed_dir, tmp_path / "c")
    valid = summary["seeds"]["0"]["valid"]
    assert valid["AUC"] > 0.7
    assert valid["NDCG@10"] > 0.3
