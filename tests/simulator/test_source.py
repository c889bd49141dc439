import numpy as np
import pandas as pd

from mtrec.config import DataConfig, SimulatorConfig
from mtrec.data.schema import ExposureSchema
from mtrec.data.sources import read_source
from mtrec.simulator.world import load_world


def test_synthetic_source_passes_the_exposure_schema(tmp_path):
    truth = tmp_path / "truth.npz"
    config = DataConfig(
        source="synthetic",
        simulator=SimulatorConfig(
            n_users=50, n_items=40, sessions_per_user=2, truth_path=str(truth)
        ),
    )
    frame = read_source(config)
    validated = ExposureSchema.validate(frame, lazy=True)
    assert len(validated) == len(frame) > 0
    assert frame.attrs["has_logged_negatives"] is True
    assert frame.attrs["satisfaction_signal"] == "true_reward"
    assert set(frame["response"].unique()) == {0, 1}

    world = load_world(truth)
    assert world.n_items == 40 and world.n_users == 50
    assert set(frame["item_id"]) <= set(world.item_ids)


def test_synthetic_source_without_truth_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = DataConfig(
        source="synthetic", simulator=SimulatorConfig(n_users=10, n_items=20, truth_path=None)
    )
    frame = read_source(config)
    assert not any(tmp_path.iterdir())
    assert pd.api.types.is_integer_dtype(frame["timestamp"])
    assert np.isfinite(frame.loc[frame["response"] == 1, "true_reward"]).all()
