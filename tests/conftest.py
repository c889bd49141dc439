"""Session-wide fixtures shared by the test packages.

Each tool's section below keeps its state out of the user's home and out of
other test sessions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# --- lifecycle tools: Prefect, MLflow, BentoML -------------------------------


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module imports prefect: its settings (PREFECT_HOME, where
    # cached task results live) are read once, and results would otherwise leak
    # between sessions through ~/.prefect.
    session_home = Path(tempfile.mkdtemp(prefix="mtrec-tests-"))
    os.environ["PREFECT_HOME"] = str(session_home / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["BENTOML_HOME"] = str(session_home / "bentoml")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API + database for the whole session (startup ~9 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def mlflow_tracking_uri(tmp_path_factory) -> str:
    """One SQLite tracking database for the session (creating one costs ~6 s).

    Tests share it, so each test uses its own experiment / registered-model name.
    """
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # Creating the schema happens on first use; do it once here.
    mlflow.MlflowClient(uri).search_experiments()
    return uri


def train_tiny_recommender(folder, kind: str, seed: int, n_items: int = 30):
    """A real SASRec/GRU4Rec/DIN fitted for a few BCE steps on a random log, saved
    with original item ids "m<idx>" (seconds on CPU)."""
    import torch

    from mtrec.models import build_model, parse_model_config, save_model

    torch.manual_seed(seed)
    config = parse_model_config({"kind": kind, "max_history": 8, "dim": 16, "dropout": 0.0})
    model = build_model(config, n_items)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    positives = torch.randint(1, n_items + 1, (16, 8), generator=generator)
    items = torch.randint(1, n_items + 1, (16, 8), generator=generator)
    state_index = torch.arange(8).expand(16, -1)
    labels = (items % 3 == 0).float()  # a learnable pattern
    model.train()
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model.exposure_logits(positives, items, state_index), labels
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    item_ids = [f"m{i}" for i in range(1, n_items + 1)]
    save_model(model.eval(), folder, item_ids=item_ids, metadata={"training": {"steps": 5}})
    import pandas as pd

    pd.DataFrame({"epoch": [1, 2], "train_loss": [0.7, 0.6], "valid_loss": [0.71, 0.65]}).to_csv(
        folder / "history.csv", index=False
    )
    return folder


def save_tiny_reward_model(folder, n_items: int = 30):
    """A real (untrained, seeded) QR-IQL Q-network over a tiny SASRec backbone."""
    import torch

    from mtrec.models import parse_model_config
    from mtrec.reward.qnetwork import RewardQNetwork, save_qnetwork

    torch.manual_seed(0)
    backbone = parse_model_config({"kind": "sasrec", "max_history": 8, "dim": 16})
    network = RewardQNetwork(backbone, n_items=n_items, n_quantiles=5, head_hidden=16)
    return save_qnetwork(network.eval(), folder, extra={"reward": {"gamma": 0.9}})


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"sasrec-none": {seed: dir}, "sasrec-mtrec": {...}, "reward": dir, "models": root}
    of real tiny models; the reward model sits where the pipeline puts sasrec's."""
    from mtrec.reward import reward_model_dir

    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for name in ("sasrec-none", "sasrec-mtrec"):
        out[name] = {
            seed: train_tiny_recommender(root / name / f"seed{seed}", "sasrec", seed)
            for seed in (0, 1)
        }
    out["reward"] = save_tiny_reward_model(reward_model_dir(root, "sasrec"))
    out["models"] = root
    return out


# --- end of lifecycle tools ---------------------------------------------------


# --- models: a tiny processed dataset with a planted signal -------------------


@pytest.fixture(scope="session")
def toy_processed_dir(tmp_path_factory) -> Path:
    """A tiny processed dataset (40 users, 24 items) with a learnable signal
    (`helpers.write_toy_processed`, which tests import directly to write others)."""
    from helpers import write_toy_processed

    return write_toy_processed(tmp_path_factory.mktemp("toy_processed"))


# --- end of models -------------------------------------------------------------
