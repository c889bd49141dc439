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


# --- end of lifecycle tools ---------------------------------------------------
