"""`bentoml serve` of the packaged champion, over real HTTP on loopback."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

pytestmark = pytest.mark.slow


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


def test_both_endpoints_serve_the_same_read_out(served):
    """/recommend's expected_mental_reward for an item is /mental_reward's mean for it
    after the same history: one read-out (`mtrec.reward.inference.expected_reward`)
    behind both endpoints and their micro-batches."""
    history = ["m2", "m9", "m4"]
    ranked = httpx.post(f"{served}/recommend", json={"history": history, "k": 6}, timeout=30)
    assert ranked.status_code == 200, ranked.text
    items = ranked.json()["items"]
    body = {"history": history, "items": [item["item_id"] for item in items]}
    rewards = httpx.post(f"{served}/mental_reward", json=body, timeout=30)
    assert rewards.status_code == 200, rewards.text
    for ranked_item, reward in zip(items, rewards.json()["items"], strict=True):
        assert ranked_item["item_id"] == reward["item_id"]
        assert ranked_item["expected_mental_reward"] == pytest.approx(reward["mean"], abs=1e-5)


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


def test_histories_longer_than_the_reward_window_are_answered(served, in_process):
    """The packaged limit (20) is over the Q-network's window (8): the read-out keeps
    the last 8 positives, as the pipeline's MDP does (a 500 before)."""
    history = [f"m{i}" for i in range(1, 21)]
    answer = httpx.post(f"{served}/recommend", json={"history": history, "k": 5}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = {"history": history, "items": ["m21", "m22"]}
    reward = httpx.post(f"{served}/mental_reward", json=body, timeout=30)
    assert reward.status_code == 200, reward.text
    expected = in_process.mental_reward(history, ["m21", "m22"])
    for mine, theirs in zip(reward.json()["items"], expected["items"], strict=True):
        assert mine["quantiles"] == pytest.approx(theirs["quantiles"], abs=1e-5)
