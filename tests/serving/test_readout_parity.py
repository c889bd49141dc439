"""The service and the pipeline read the mental reward out with one function
(`mtrec.reward.inference.expected_reward`), and serving loads no reward training code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from mtrec.serving.runtime import RecommenderRuntime, RewardModel

# "Reward training": every module of `mtrec.reward` but the inference side (the
# Q-network, the pure read-out, the config options and the package's layout helper),
# plus the recommender training and baseline packages.
INFERENCE_SIDE = {
    "mtrec.reward",
    "mtrec.reward.inference",
    "mtrec.reward.options",
    "mtrec.reward.qnetwork",
}
REWARD_TRAINING = (
    "mtrec.reward.alignment",
    "mtrec.reward.calibration",
    "mtrec.reward.ceiling",
    "mtrec.reward.distill",
    "mtrec.reward.losses",
    "mtrec.reward.mdp",
    "mtrec.reward.proxies",
    "mtrec.reward.readout",
    "mtrec.reward.train",
)
OTHER_TRAINING_PACKAGES = ("mtrec.training", "mtrec.baselines", "mtrec.data", "mtrec.evaluation")
NEXT_ITEM = 5  # the display distribution of the parity check puts all its mass here

_SERVE_AND_LIST_MODULES = """
import json, sys
import mtrec.serving.service
from mtrec.serving.runtime import RecommenderRuntime
runtime = RecommenderRuntime.load(sys.argv[1], sys.argv[2], device="cpu")
runtime.warm_up()
runtime.recommend(["m1", "m2"], 3, True)
runtime.mental_reward(["m1", "m2"], ["m3", "m4"])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("mtrec"))))
"""


def test_the_forbidden_list_names_real_modules():
    """The list below would pass vacuously if a module were renamed."""
    for name in (*REWARD_TRAINING, *OTHER_TRAINING_PACKAGES, *INFERENCE_SIDE):
        assert importlib.util.find_spec(name) is not None, name
    package = Path(importlib.util.find_spec("mtrec.reward").origin).parent
    every_reward_module = {
        f"mtrec.reward.{path.stem}" for path in package.glob("*.py") if path.stem != "__init__"
    }
    assert every_reward_module == (INFERENCE_SIDE - {"mtrec.reward"}) | set(REWARD_TRAINING)


def test_serving_a_reward_model_imports_no_training_code(tiny_models):
    """Loading a champion with its reward model and answering both endpoints (the
    read-out runs) leaves only the inference side of `mtrec.reward` in sys.modules."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _SERVE_AND_LIST_MODULES,
            str(tiny_models["sasrec-none"][0]),
            str(tiny_models["reward"]),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "mtrec.reward.inference" in loaded  # the read-out did run
    reward_modules = {m for m in loaded if m == "mtrec.reward" or m.startswith("mtrec.reward.")}
    assert reward_modules <= INFERENCE_SIDE, sorted(reward_modules - INFERENCE_SIDE)
    training = sorted(
        m for m in loaded if m.startswith(tuple(f"{p}." for p in OTHER_TRAINING_PACKAGES))
    )
    assert not training, training


@pytest.fixture(scope="module", params=[False, True], ids=["two-action", "leave-aware"])
def trained_reward(request, toy_processed_dir, tmp_path_factory):
    """A QR-IQL model trained for a few epochs on the toy log (window 4: users have 6+
    positives, so histories overflow it), its i' distribution made one item; once
    with the two-action MDP, once leave-aware (four actions, a behaviour term)."""
    from mtrec.config import GRU4RecConfig, RewardConfig
    from mtrec.reward.qnetwork import save_next_item_distribution
    from mtrec.reward.train import train_reward

    torch.manual_seed(0)
    config = RewardConfig(
        backbone=GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0),
        n_quantiles=5,
        max_epochs=3,
        patience=3,
        window=16,
        windows_per_batch=8,
        gamma=0.8,
        cvar_level=0.4,
        device="cpu",
        leave_action=request.param,
        behaviour_weight=1.0 if request.param else 0.0,
    )
    folder = tmp_path_factory.mktemp("parity") / "qnetwork"
    train_reward(config, toy_processed_dir, folder, progress=False)
    from mtrec.data.processed import load_processed

    one_item = torch.zeros(load_processed(toy_processed_dir).n_items + 1, dtype=torch.float64)
    one_item[NEXT_ITEM] = 1.0  # the service's fixed draw and the pipeline's sample agree
    save_next_item_distribution(folder, one_item)
    return folder, one_item


def test_served_reward_equals_the_pipelines_read_out(trained_reward, toy_processed_dir):
    """For every exposure (h, i) of the toy log, /mental_reward's mean for item i
    after history h equals the pipeline's `reward_pos_expected` for that row
    (`compute_rewards`, the read_out_rewards stage's function), answered in one
    micro-batch and one at a time; the pipeline's CVaR of the same quantiles
    equals the served CVaR."""
    from mtrec.data.processed import load_processed
    from mtrec.models import build_model, parse_model_config
    from mtrec.reward.inference import expected_reward
    from mtrec.reward.mdp import build_mdp, concat_splits
    from mtrec.reward.qnetwork import load_qnetwork
    from mtrec.reward.readout import compute_rewards, saved_reward_config
    from mtrec.reward.train import behaviour_only

    folder, display = trained_reward
    processed = load_processed(toy_processed_dir)
    log = concat_splits(
        {name: behaviour_only(processed.split(name)) for name in ("train", "valid", "test")}
    )
    config = saved_reward_config(folder)
    network = load_qnetwork(folder)
    assert network.n_actions == (4 if config.leave_action else 2)
    pipeline = compute_rewards(network, log, config, display, torch.device("cpu"), progress=False)

    items = pd.read_parquet(toy_processed_dir / "items.parquet").sort_values("item_idx")
    item_ids = items["item_id"].tolist()
    recommender = build_model(
        parse_model_config({"kind": "sasrec", "max_history": 8, "dim": 8}), len(item_ids)
    ).eval()
    runtime = RecommenderRuntime(
        recommender,
        item_ids,
        RewardModel.load(folder, torch.device("cpu")),
    )
    assert runtime.reward.gamma == 0.8 and runtime.reward.cvar_level == 0.4  # saved, not defaults

    # Each row's history, rebuilt from the log: the user's positives before it.
    queries, positives_so_far, longest = [], {}, 0
    for user, item, response in log[["user_idx", "item_idx", "response"]].itertuples(index=False):
        history = positives_so_far.setdefault(user, [])
        longest = max(longest, len(history))
        ids = [item_ids[i - 1] for i in history]
        queries.append(runtime.check_mental_reward(ids, [item_ids[item - 1]]))
        if response == 1:
            history.append(item)
    assert longest > network.max_history  # the window is exercised
    served = runtime.answer(queries)  # one micro-batch of every row
    means = torch.tensor([answer["items"][0]["mean"] for answer in served])
    expected = torch.tensor(pipeline["reward_pos_expected"].to_numpy())
    assert torch.allclose(means.double(), expected.double(), atol=1e-5), (
        (means.double() - expected.double()).abs().max()
    )
    # The read-out is not constant: equality above is not a coincidence of a flat model.
    assert expected.std() > 1e-3
    for row in (0, len(queries) // 2, len(queries) - 1):  # one at a time, as a lone request
        alone = runtime.answer([queries[row]])[0]["items"][0]
        assert alone["mean"] == pytest.approx(float(expected[row]), abs=1e-5)

    # The CVaR the service reports is the pipeline function's CVaR of the click's
    # reward quantiles for the same state, read with the pipeline's own MDP histories.
    mdp = build_mdp(log, network.max_history)
    rows = torch.arange(len(log))
    positives, lengths = mdp.histories(rows)
    reference = expected_reward(
        network,
        positives,
        lengths,
        mdp.items,
        torch.full((len(log), 3), NEXT_ITEM),
        config.gamma,
        config.cvar_level,
        actions=(1,),
    )
    cvars = torch.tensor([answer["items"][0]["cvar"] for answer in served])
    assert torch.allclose(cvars, reference["cvar"][:, 0], atol=1e-5)
    quantiles = torch.tensor([answer["items"][0]["quantiles"] for answer in served])
    assert torch.allclose(quantiles, reference["quantiles"][:, 0], atol=1e-5)
