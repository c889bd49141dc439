import json

import torch

from mtrec.config import OnlineConfig, SASRecConfig, SimulatorConfig
from mtrec.models import build_model, save_model
from mtrec.simulator.policies import ItemIndexMap, ModelPolicy
from mtrec.simulator.steps import online_evaluation
from mtrec.simulator.world import make_world

SIM = SimulatorConfig(n_users=80, n_items=50, sessions_per_user=2, max_session_length=10)
ONLINE = OnlineConfig(
    n_users=40,
    sessions_per_user=1,
    max_session_length=5,
    slate_size=3,
    warmup_exposures=10,
    n_bootstrap=100,
)


def _saved_model(tmp_path, item_ids):
    torch.manual_seed(0)
    model = build_model(
        SASRecConfig(dim=8, n_layers=1, n_heads=1, ffn_dim=16, max_history=10), len(item_ids)
    )
    return save_model(model, tmp_path / "sasrec", item_ids=item_ids)


def test_model_policy_maps_the_model_items_onto_the_simulator(tmp_path):
    world = make_world(SIM)
    # The processed data knows 40 of the 50 items, in another order.
    item_ids = [str(i) for i in reversed(range(11, 51))]
    path = _saved_model(tmp_path, item_ids)
    policy, item_map = ModelPolicy.from_path(path, world)
    assert item_map.n_policy_items == 40
    assert item_map.to_policy[49] == 1  # simulator item 49 has id "50", the model's item_idx 1
    assert (item_map.to_policy[:10] == 0).all()
    scores = policy.score_all(torch.tensor([[1, 2, 0]]))
    assert scores.shape == (1, 41)


def test_online_evaluation_step_writes_the_report(tmp_path):
    world = make_world(SIM)
    path = _saved_model(tmp_path, list(world.item_ids))
    out = tmp_path / "online.json"
    report = online_evaluation(SIM, ONLINE, {"sasrec": path}, out, baseline="popularity")
    saved = json.loads(out.read_text())
    oracles = {"quality_oracle", "ctr_oracle", "satisfaction_oracle"}
    assert set(saved["policies"]) == {"random", "popularity", "sasrec"} | oracles
    assert set(saved["versus_baseline"]) == {"random", "sasrec"} | oracles
    assert report["versus_baseline"]["quality_oracle"]["reward_per_shown"]["difference"] > 0
    assert saved["responsiveness"]["popularity"]["responsiveness"] == 0.0
    # The state oracles do not rank from histories: no responsiveness probe for them.
    assert "ctr_oracle" not in saved["responsiveness"]
    assert ItemIndexMap.identity(3).to_policy.tolist() == [1, 2, 3]


def test_simulate_online_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mtrec.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data:\n  source: synthetic\n  simulator:\n    n_users: 60\n    n_items: 40\n"
        "    truth_path: null\n"
        "online:\n  n_users: 30\n  sessions_per_user: 1\n  max_session_length: 4\n"
        "  warmup_exposures: 5\n  n_bootstrap: 100\n"
    )
    result = CliRunner().invoke(app, ["simulate-online", "--baseline", "random"])
    assert result.exit_code == 0, result.output
    assert "quality_oracle: viewing time" in result.output
    report = json.loads((tmp_path / "reports" / "online.json").read_text())
    assert report["baseline"] == "random"
    assert report["config"]["n_users"] == 30
    bad = CliRunner().invoke(app, ["simulate-online", "--model", "no-equals-sign"])
    assert bad.exit_code != 0
