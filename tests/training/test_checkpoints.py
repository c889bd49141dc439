"""Checkpoints: tensors only (no pickle), kept where DVC does not delete them,
keyed by the run's inputs."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtrec.config import GRU4RecConfig, RecommenderConfig, TrainConfig
from mtrec.training import TrainingStopped, train_recommender
from mtrec.training.loop import CheckpointRefused, load_checkpoint


def _config(**train) -> RecommenderConfig:
    defaults = dict(max_epochs=3, batch_size=4, learning_rate=0.01, patience=5)
    return RecommenderConfig(
        seeds=(0,),
        gru4rec=GRU4RecConfig(max_history=6, dim=8, hidden_dim=8, dropout=0.3),
        train=TrainConfig(**(defaults | train)),
    )


class _RunsCodeWhenUnpickled:
    """What a hostile checkpoint could carry: unpickling it calls `open(marker, "w")`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_needs_pickle_is_refused_and_runs_nothing(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    marker = tmp_path / "code-ran"
    seed_dir = tmp_path / "c" / "seed_0"
    seed_dir.mkdir(parents=True)
    torch.save(
        {"fingerprint": "x", "model": _RunsCodeWhenUnpickled(marker)}, seed_dir / "checkpoint.pt"
    )
    with pytest.raises(CheckpointRefused, match="not a tensors-only checkpoint"):
        load_checkpoint(seed_dir / "checkpoint.pt")
    # Training with resume on refuses it too, instead of unpickling it.
    with pytest.raises(CheckpointRefused):
        train_recommender(_config(), "gru4rec", "none", toy_processed_dir, tmp_path / "c")
    assert not marker.exists(), "the checkpoint's payload was executed"


def test_a_real_checkpoint_loads_with_weights_only(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    train_recommender(_config(max_epochs=1), "gru4rec", "none", toy_processed_dir, tmp_path / "c")
    state = load_checkpoint(tmp_path / "c" / "seed_0" / "checkpoint.pt")
    assert state["finished"] and state["best_epoch"] == 1
    assert all(isinstance(t, torch.Tensor) for t in state["best_model"].values())


def test_resume_survives_the_outputs_being_deleted(toy_processed_dir, tmp_path):
    """As under `dvc repro`: the stage's outputs are deleted before the rerun; the
    checkpoint under checkpoint_root is not, and the rerun continues from it to
    the same bytes as an uninterrupted run."""
    torch.set_num_threads(1)
    root = tmp_path / "cache"
    whole = train_recommender(_config(), "gru4rec", "none", toy_processed_dir, tmp_path / "whole")
    out = tmp_path / "killed"
    with pytest.raises(TrainingStopped):
        train_recommender(
            _config(),
            "gru4rec",
            "none",
            toy_processed_dir,
            out,
            checkpoint_root=root,
            stop_after_epochs=1,
        )
    assert not list(out.rglob("checkpoint.pt")), "the checkpoint is inside the outputs"
    assert len(list((root / "gru4rec-none").glob("*/seed_0/checkpoint.pt"))) == 1
    shutil.rmtree(out)  # what DVC does before it runs the stage again
    resumed = train_recommender(
        _config(), "gru4rec", "none", toy_processed_dir, out, checkpoint_root=root
    )
    assert resumed["seeds"]["0"]["resumed_from_epoch"] == 1
    assert not (root / "gru4rec-none").exists(), "finished checkpoints are not removed"
    for name in ("seed_0/metrics.csv", "seed_0/best/weights.pt", "seed_0/best/config.json"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert (out / "train_summary.json").read_text().replace("killed", "whole") == (
        tmp_path / "whole" / "train_summary.json"
    ).read_text()
    assert whole["seeds"]["0"]["resumed_from_epoch"] == 0
    assert "seconds_per_epoch" not in json.loads((out / "train_summary.json").read_text())
    assert json.loads((out / "timing.json").read_text())["seconds_per_epoch"] > 0


def test_a_checkpoint_without_a_loss_state_resumes(toy_processed_dir, tmp_path):
    """Checkpoints written before every loss was an nn.Module stored `"loss": None`
    for a loss without parameters; resuming one gives the uninterrupted run."""
    torch.set_num_threads(1)
    whole = tmp_path / "whole"
    train_recommender(_config(max_epochs=2), "gru4rec", "none", toy_processed_dir, whole)
    out = tmp_path / "old"
    with pytest.raises(TrainingStopped):
        train_recommender(
            _config(max_epochs=2), "gru4rec", "none", toy_processed_dir, out, stop_after_epochs=1
        )
    path = out / "seed_0" / "checkpoint.pt"
    state = load_checkpoint(path)
    assert state["loss"] == {}  # a loss without parameters has an empty state now
    torch.save(state | {"loss": None}, path)
    resumed = train_recommender(_config(max_epochs=2), "gru4rec", "none", toy_processed_dir, out)
    assert resumed["seeds"]["0"]["resumed_from_epoch"] == 1
    name = "seed_0/best/weights.pt"
    assert (out / name).read_bytes() == (whole / name).read_bytes()


def test_a_checkpoint_of_other_data_is_not_resumed(toy_processed_dir, tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "cache"
    data = tmp_path / "data"
    shutil.copytree(toy_processed_dir, data)
    with pytest.raises(TrainingStopped):
        train_recommender(
            _config(),
            "gru4rec",
            "none",
            data,
            tmp_path / "c",
            checkpoint_root=root,
            stop_after_epochs=1,
        )
    # Same config, one training exposure fewer: the old checkpoint must not be resumed.
    train = pd.read_parquet(data / "train.parquet")
    train.iloc[:-1].to_parquet(data / "train.parquet", index=False)
    with pytest.raises(TrainingStopped):
        summary_or_stop = train_recommender(
            _config(),
            "gru4rec",
            "none",
            data,
            tmp_path / "c",
            checkpoint_root=root,
            stop_after_epochs=1,
        )
        del summary_or_stop
    keys = [p.name for p in (root / "gru4rec-none").iterdir()]
    assert len(keys) == 1, "the stale checkpoint is kept beside the new one"
    state = load_checkpoint(root / "gru4rec-none" / keys[0] / "seed_0" / "checkpoint.pt")
    assert state["clock_epoch"] == 1  # a fresh run's first epoch, not the old run's second
