"""`bentoml serve` of the packaged champion, over real HTTP on loopback."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import free_port, gate_candidate, stop_process, wait_ready

from mtrec.config import GateConfig, PackageConfig, TrackingConfig
from mtrec.lifecycle.package import package_champion
from mtrec.lifecycle.steps import run_gate
from mtrec.serving.runtime import RecommenderRuntime

ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).with_name("bentoml"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
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
            max_history=20,
            bento_model="mtrec-serving-test",
        ),
        ROOT,
        work / "package.json",
    )
    return summary, work


@pytest.fixture(scope="module")
def served(packaged, tiny_models):
    summary, work = packaged
    port = free_port()
    log = work / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [BENTOML, "serve", summary["bento"], "--host", "127.0.0.1", "--port", str(port)],
            env={k: v for k, v in os.environ.items() if k != "MTREC_BENTO_MODEL"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{url}/readyz", process, log, seconds=120)
            yield url
        finally:
            stop_process(process)


@pytest.fixture(scope="module")
def in_process(tiny_models):
    seed0 = tiny_models["sasrec-mtrec"][0]
    return RecommenderRuntime.load(seed0, tiny_models["reward"], device="cpu")


def test_package_json_names_the_bento_and_the_registry_version(packaged):
    summary, work = packaged
    written = json.loads((work / "package.json").read_text())
    assert written["bento"].startswith("mtrec:")
    # Not the default name: the Bento must serve the model it was built with.
    assert written["bento_model"].startswith("mtrec-serving-test:")
    assert written["candidate"] == "sasrec-mtrec"
    assert written["has_reward_model"] is True


def test_recommend_matches_the_model_called_directly(served, in_process):
    body = {"history": ["m1", "m2", "m7"], "k": 5, "exclude_history": True}
    answer = httpx.post(f"{served}/recommend", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    expected = in_process.recommend(["m1", "m2", "m7"], 5, True)
    got = answer.json()
    assert [i["item_id"] for i in got["items"]] == [i["item_id"] for i in expected["items"]]
    for mine, theirs in zip(got["items"], expected["items"], strict=True):
        assert mine["ctr"] == pytest.approx(theirs["ctr"], abs=1e-5)
        assert mine["expected_mental_reward"] == pytest.approx(
            theirs["expected_mental_reward"], abs=1e-5
        )
    assert not {"m1", "m2", "m7"} & {i["item_id"] for i in got["items"]}
    # Empty history is a valid cold-start request.
    cold = httpx.post(f"{served}/recommend", json={"history": [], "k": 3}, timeout=30)
    assert cold.status_code == 200 and len(cold.json()["items"]) == 3


def test_mental_reward_matches_the_model_called_directly(served, in_process):
    body = {"history": ["m3"], "items": ["m4", "m5"]}
    answer = httpx.post(f"{served}/mental_reward", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    expected = in_process.mental_reward(["m3"], ["m4", "m5"])
    assert got["quantile_levels"] == pytest.approx(expected["quantile_levels"])
    for mine, theirs in zip(got["items"], expected["items"], strict=True):
        assert mine["quantiles"] == pytest.approx(theirs["quantiles"], abs=1e-5)
        assert mine["quantiles"] == sorted(mine["quantiles"])
        assert mine["cvar"] <= mine["mean"] + 1e-6


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("recommend", {"history": ["nope"], "k": 3}, "history"),
        ("recommend", {"history": ["m1"] * 21, "k": 3}, "history"),
        ("recommend", {"history": ["m1"], "k": 0}, "k"),
        ("recommend", {"history": ["m1"], "k": -2}, "k"),
        ("recommend", {"history": ["m1"], "k": 31}, "k"),
        ("recommend", {"history": ["m1"], "k": 10**30}, "k"),
        ("recommend", {"history": ["m1"], "k": "3"}, "k"),
        ("recommend", {"history": ["m1"], "k": 2.5}, "k"),
        ("recommend", {"history": "m1", "k": 3}, "history"),
        ("recommend", {"history": [1.5], "k": 3}, "history"),
        ("recommend", {"history": [None], "k": 3}, "history"),
        ("recommend", {"k": 3}, "history"),
        ("recommend", {"history": ["m1"], "k": 3, "exclude_history": "yes"}, "exclude_history"),
        ("mental_reward", {"history": ["m1"], "items": []}, "items"),
        ("mental_reward", {"history": ["m1"], "items": ["m2", "ghost"]}, "items"),
        ("mental_reward", {"history": ["ghost"], "items": ["m2"]}, "history"),
        ("mental_reward", {"history": ["m1"]}, "items"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(served, route, body, field):
    answer = httpx.post(f"{served}/{route}", json=body, timeout=30)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert field in answer.text


def test_malformed_json_is_4xx(served):
    answer = httpx.post(
        f"{served}/recommend",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= answer.status_code < 500


def test_probes_and_openapi(served):
    assert httpx.get(f"{served}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{served}/readyz", timeout=10).status_code == 200
    spec = httpx.get(f"{served}/docs.json", timeout=10).json()
    assert {"/recommend", "/mental_reward"} <= set(spec["paths"])
    info = httpx.post(f"{served}/model_info", json={}, timeout=10).json()
    assert info["candidate"] == "sasrec-mtrec" and info["reward_model"] is True


def test_short_concurrent_burst_has_no_errors(served):
    def one(n: int) -> int:
        body = {"history": [f"m{1 + n % 30}"], "k": 5}
        return httpx.post(f"{served}/recommend", json=body, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(64)))
    assert codes == [200] * 64
