"""The in-process runtime the service wraps: request checks and the reward read-out."""

from __future__ import annotations

import pytest
import torch

from mtrec.serving.runtime import RecommenderRuntime, RequestError, RewardModelMissing


def test_served_reward_is_the_pipelines_expected_next_read_out(tiny_models, tmp_path):
    """/mental_reward = lambda_k(s, 1) - gamma E_i'[V(s')] with i' from the saved
    display distribution and the saved gamma / CVaR level (mtrec.reward.readout)."""
    import shutil

    from mtrec.reward.inference import soft_value
    from mtrec.reward.qnetwork import load_qnetwork, save_next_item_distribution

    reward_dir = tmp_path / "reward"
    shutil.copytree(tiny_models["reward"], reward_dir)
    only_item_7 = torch.zeros(31, dtype=torch.float64)
    only_item_7[7] = 1.0  # every next displayed item i' is item 7
    save_next_item_distribution(reward_dir, only_item_7)
    runtime = RecommenderRuntime.load(tiny_models["sasrec-none"][0], reward_dir, device="cpu")
    answer = runtime.mental_reward(["m1", "m2"], ["m3"])

    network = load_qnetwork(reward_dir)
    with torch.no_grad():
        now = network(torch.tensor([[1, 2]]), torch.tensor([[3]]), torch.tensor([[2]]))
        after = network(torch.tensor([[1, 2, 3]]), torch.tensor([[7]]), torch.tensor([[3]]))
    expected = now[0, 0, 1] - 0.9 * soft_value(after[0])  # gamma 0.9 saved with the model
    got = answer["items"][0]
    assert got["quantiles"] == pytest.approx(sorted(expected.tolist()), abs=1e-5)
    assert got["mean"] == pytest.approx(expected.mean().item(), abs=1e-5)
    assert answer["cvar_level"] == 0.3  # the read-out's default, not a serving constant
    # CVaR at 0.3 of N = 5 atoms: the lowest weighs 0.2, the second its fractional 0.1.
    lowest_two = sorted(expected.tolist())[:2]
    assert got["cvar"] == pytest.approx((0.2 * lowest_two[0] + 0.1 * lowest_two[1]) / 0.3, abs=1e-5)


def test_without_reward_model_mental_reward_is_refused(tiny_models):
    runtime = RecommenderRuntime.load(tiny_models["sasrec-none"][0], None, device="cpu")
    answer = runtime.recommend(["m1"], 3, True)
    assert [item["expected_mental_reward"] for item in answer["items"]] == [None] * 3
    assert answer["reward_model"] is False
    with pytest.raises(RewardModelMissing):
        runtime.mental_reward(["m1"], ["m2"])


def test_recommend_is_the_top_k_of_score_all(tiny_models):
    runtime = RecommenderRuntime.load(tiny_models["sasrec-none"][0], None, device="cpu")
    probs = runtime.ctr_probabilities([runtime.index_of["m4"]])
    probs[0] = -1
    expected = [f"m{i}" for i in torch.topk(probs, 4).indices.tolist()]
    got = runtime.recommend(["m4"], 4, False)
    assert [item["item_id"] for item in got["items"]] == expected


@pytest.mark.parametrize(
    ("history", "k", "exclude", "field"),
    [
        (["m1", "zz"], 3, True, "history"),
        ([True], 3, True, "history"),
        (["m1"], 30, True, "k"),  # 30 items, one excluded
        (["m1"], True, True, "k"),
        (["m1"], 3, 1, "exclude_history"),
    ],
)
def test_request_errors_name_the_field(tiny_models, history, k, exclude, field):
    runtime = RecommenderRuntime.load(tiny_models["sasrec-none"][0], None, device="cpu")
    with pytest.raises(RequestError) as error:
        runtime.recommend(history, k, exclude)
    assert error.value.field == field


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runtime_gives_the_cpu_answer(tiny_models):
    model_dir, reward_dir = tiny_models["sasrec-none"][0], tiny_models["reward"]
    cpu = RecommenderRuntime.load(model_dir, reward_dir, device="cpu")
    gpu = RecommenderRuntime.load(model_dir, reward_dir, device="cuda")
    a, b = cpu.recommend(["m1"], 5, True), gpu.recommend(["m1"], 5, True)
    assert [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]
    ra, rb = cpu.mental_reward(["m1"], ["m2"]), gpu.mental_reward(["m1"], ["m2"])
    assert ra["items"][0]["mean"] == pytest.approx(rb["items"][0]["mean"], abs=1e-4)


def test_service_module_never_imports_training_code():
    import subprocess
    import sys

    code = (
        "import sys, mtrec.serving.service, mtrec.serving.runtime, mtrec.reward.qnetwork; "
        "bad = sorted(m for m in sys.modules "
        "if m.startswith(('mtrec.training', 'mtrec.baselines'))); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _mixed_queries(runtime):
    import random

    rng = random.Random(3)
    ids = runtime.item_ids
    queries, expected = [], []
    for n in range(24):
        history = rng.sample(ids, rng.randint(0, 14))  # some longer than the window (8)
        if n % 3:
            k, exclude = rng.randint(1, 10), bool(n % 2)
            queries.append(runtime.check_recommend(history, k, exclude))
            expected.append(runtime.recommend(history, k, exclude))
        else:
            items = rng.sample(ids, rng.randint(1, 6))
            queries.append(runtime.check_mental_reward(history, items))
            expected.append(runtime.mental_reward(history, items))
    return queries, expected


def test_batched_answers_equal_answers_one_at_a_time(tiny_models):
    """One forward pass for many requests changes nothing but float rounding."""
    runtime = RecommenderRuntime.load(
        tiny_models["sasrec-mtrec"][0], tiny_models["reward"], device="cpu"
    )
    queries, expected = _mixed_queries(runtime)
    for got, want in zip(runtime.answer(queries), expected, strict=True):
        assert [i["item_id"] for i in got["items"]] == [i["item_id"] for i in want["items"]]
        for mine, theirs in zip(got["items"], want["items"], strict=True):
            for key in ("ctr", "expected_mental_reward", "mean", "cvar"):
                if key in theirs:
                    assert mine[key] == pytest.approx(theirs[key], abs=1e-6)
            if "quantiles" in theirs:
                assert mine["quantiles"] == pytest.approx(theirs["quantiles"], abs=1e-6)


def test_reward_read_out_keeps_the_q_networks_last_max_history_positives(tiny_models):
    """As the pipeline's MDP (mtrec.reward.mdp): h is the last max_history positives
    and h + [i] keeps the last max_history of it. A longer history used to overflow
    SASRec's positions (a 500 over HTTP)."""
    runtime = RecommenderRuntime.load(
        tiny_models["sasrec-mtrec"][0], tiny_models["reward"], device="cpu"
    )
    window = runtime.reward_network.max_history
    history = [f"m{i}" for i in range(1, window + 6)]
    assert runtime.mental_reward(history, ["m3", "m20"]) == runtime.mental_reward(
        history[-window:], ["m3", "m20"]
    )
    answer = runtime.recommend(history, 5, False)
    assert all(item["expected_mental_reward"] is not None for item in answer["items"])


def test_error_messages_never_echo_a_whole_id(tiny_models):
    runtime = RecommenderRuntime.load(tiny_models["sasrec-none"][0], None, device="cpu")
    with pytest.raises(RequestError) as error:
        runtime.recommend(["q" * 100_000, *(f"ghost{n}" for n in range(50))], 3, True)
    message = str(error.value)
    assert len(message) < 300 and "51 unknown" in message
    assert "(+99968 chars)" in message  # truncated and counted
    with pytest.raises(RequestError) as error:
        runtime.recommend(["m1"], 10**5000, True)  # str() of it would raise
    assert len(str(error.value)) < 200
