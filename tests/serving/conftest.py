"""The packaged champion and `bentoml serve` of it on loopback, shared by the
serving tests (one package, one server for the whole folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import gate_candidate
from serving_helpers import MAX_HISTORY, Server, serve_bento

from mtrec.config import GateConfig, PackageConfig, TrackingConfig
from mtrec.lifecycle.package import package_champion
from mtrec.lifecycle.steps import run_gate
from mtrec.serving.runtime import RecommenderRuntime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def packaged(mlflow_tracking_uri, tiny_models, tmp_path_factory):
    """The gate promotes a real tiny model; `package` builds its Bento."""
    work = tmp_path_factory.mktemp("package")
    tracking = TrackingConfig(
        tracking_uri=mlflow_tracking_uri,
        experiment="serving-test",
        registered_model="mtrec-recommender-serving-test",
    )
    ranks = np.random.default_rng(0).integers(1, 30, 200).astype(float)
    candidates = {
        name: gate_candidate(
            "sasrec",
            guidance,
            {s: seed_ranks for s in (0, 1)},
            extra_by_seed={s: {"AUC": 0.7} for s in (0, 1)},
            model_dirs=tiny_models[name],
        )
        for name, guidance, seed_ranks in (
            ("sasrec-none", "none", ranks),
            ("sasrec-mtrec", "mtrec", np.maximum(1, ranks // 2)),  # a clear validation gain
        )
    }
    (work / "metrics.json").write_text(json.dumps({"candidates": candidates}))
    (work / "processed").mkdir()
    decision = run_gate(
        work / "metrics.json",
        work / "gate.json",
        GateConfig(),
        tracking,
        work,
        work / "processed",
        tiny_models["models"],
    )
    assert decision["winner"] == "sasrec-mtrec"
    summary = package_champion(
        tracking,
        PackageConfig(
            bentoml_home=os.environ["BENTOML_HOME"],
            max_history=MAX_HISTORY,
            bento_model="mtrec-serving-test",
        ),
        ROOT,
        work / "package.json",
    )
    return summary, work


@pytest.fixture(scope="package")
def server(packaged) -> Iterator[Server]:
    summary, work = packaged
    # One worker: the batching counters of /model_info are then the whole server's.
    env = {"MTREC_SERVE_WORKERS": "1"}
    with serve_bento(summary["bento"], work / "serve.log", env) as running:
        yield running


@pytest.fixture(scope="package")
def served(server) -> str:
    return server.url


@pytest.fixture(scope="package")
def in_process(tiny_models):
    seed0 = tiny_models["sasrec-mtrec"][0]
    return RecommenderRuntime.load(seed0, tiny_models["reward"], device="cpu")
