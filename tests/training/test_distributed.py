"""Data-parallel training under torchrun: two gloo processes on tiny data
against one process, through the real `mtrec train-recommender` command."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from mtrec.training.distributed import World, shard_batches, steps_per_epoch


def test_each_process_takes_its_share_padded_by_wrapping_round():
    batches = ["b0", "b1", "b2", "b3", "b4"]
    assert list(shard_batches(batches, World(0, 2))) == ["b0", "b2", "b4"]
    assert list(shard_batches(batches, World(1, 2))) == ["b1", "b3", "b0"]
    shares = [list(shard_batches(batches, World(r, 3))) for r in range(3)]
    assert shares == [["b0", "b3"], ["b1", "b4"], ["b2", "b0"]]
    assert {len(share) for share in shares} == {steps_per_epoch(5, World(0, 3))}
    assert list(shard_batches(batches, World())) == batches


def _params(tmp_path, processed, nproc: int) -> str:
    params = {
        "paths": {"processed": str(processed), "models": str(tmp_path / f"models{nproc}")},
        "recommender": {
            "backbones": ["gru4rec"],
            "guidances": ["none"],
            "seeds": [0],
            "rewards_path": None,
            "gru4rec": {"max_history": 6, "dim": 16, "hidden_dim": 16},
            "train": {
                "max_epochs": 3,
                "patience": 3,
                "batch_size": 4,
                "learning_rate": 0.01,
                "nproc": nproc,
                "num_threads": 1,
                "device": "cpu",
            },
        },
    }
    path = tmp_path / f"params{nproc}.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


@pytest.mark.slow
def test_two_gloo_processes_train_like_one(toy_processed_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    summaries = {}
    for nproc in (1, 2):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mtrec.cli",
                "train-recommender",
                "--backbone",
                "gru4rec",
                "--guidance",
                "none",
                "--no-progress",
                "--params",
                _params(tmp_path, toy_processed_dir, nproc),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # One report line, from rank 0 only.
        assert done.stdout.count("gru4rec-none seed 0: best epoch") == 1, done.stdout
        folder = tmp_path / f"models{nproc}" / "candidates" / "gru4rec-none"
        summaries[nproc] = json.loads((folder / "train_summary.json").read_text())
        assert (folder / "seed_0" / "best").is_dir()
    one, two = (summaries[n]["seeds"]["0"] for n in (1, 2))
    assert one["epochs_run"] == two["epochs_run"] == 3
    # Same data, same number of examples per epoch, twice the batch per step:
    # the validation quality is in the same range (a random model scores ~0.5).
    assert two["valid"]["AUC"] > 0.55
    assert abs(one["valid"]["AUC"] - two["valid"]["AUC"]) < 0.1
