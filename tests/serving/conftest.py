"""The packaged champion and `bentoml serve` of it on loopback, shared by the
serving tests (one package, one server for the whole folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
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
    candidates = {}
    for name, guidance, score in (("sasrec-none", "none", 0.1), ("sasrec-mtrec", "mtrec", 0.2)):
        seeds = {str(s): {"NDCG_p@10": score, "AUC": 0.7, "NDCG@10": 0.1} for s in (0, 1)}
        candidates[name] = {
            "backbone": "sasrec",
            "guidance": guidance,
            "seeds": seeds,
            "mean": seeds["0"],
            "std": {m: 0.0 for m in seeds["0"]},
            "model_dirs": {str(s): str(p) for s, p in tiny_models[name].items()},
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
