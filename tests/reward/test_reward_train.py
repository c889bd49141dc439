from __future__ import annotations

import pandas as pd
import torch

from mtrec.config import GRU4RecConfig
from mtrec.reward.mdp import build_mdp
from mtrec.reward.qnetwork import RewardQNetwork
from mtrec.reward.train import quantiles_for_rows

LOG = pd.DataFrame(
    {
        "user_idx": [1, 1, 1, 1, 1, 2, 2],
        "item_idx": [5, 6, 7, 8, 9, 3, 4],
        "timestamp": [1, 2, 3, 4, 5, 1, 2],
        "response": [1, 0, 1, 1, 0, 0, 1],
    }
)


def test_grouping_rows_by_history_changes_nothing():
    torch.manual_seed(0)
    mdp = build_mdp(LOG, max_history=3)
    backbone = GRU4RecConfig(max_history=3, dim=8, hidden_dim=8, dropout=0.0)
    network = RewardQNetwork(backbone, n_items=10, n_quantiles=3, head_hidden=8).eval()
    rows = torch.tensor([4, 0, 1, 2, 3, 5, 6, 2])
    grouped = quantiles_for_rows(network, mdp, rows)
    positives, lengths = mdp.histories(rows)
    one_by_one = network(positives, mdp.items[rows].unsqueeze(1), lengths.unsqueeze(1))[:, 0]
    assert grouped.shape == (8, 2, 3)
    assert torch.allclose(grouped, one_by_one, atol=1e-6)


def test_states_of_very_different_widths_run_in_batches_with_the_same_result():
    """One state shows many items, the others one: the padded grid is split by
    width (max_cells) and every row still gets its own quantiles, in order."""
    torch.manual_seed(0)
    log = pd.DataFrame(
        {
            "user_idx": [1] * 12 + [2, 2, 3, 3],
            "item_idx": [5, 1, 2, 3, 4, 6, 7, 8, 9, 1, 2, 6, 3, 4, 5, 6],
            "timestamp": list(range(12)) + [1, 2, 1, 2],
            "response": [1] + [0] * 10 + [1] + [1, 1, 1, 1],
        }
    )
    mdp = build_mdp(log, max_history=3)
    backbone = GRU4RecConfig(max_history=3, dim=8, hidden_dim=8, dropout=0.0)
    network = RewardQNetwork(backbone, n_items=10, n_quantiles=3, head_hidden=8).eval()
    rows = torch.tensor([3, 12, 0, 1, 14, 2, 13, 15, 10, 11, 4])
    whole = quantiles_for_rows(network, mdp, rows, max_cells=10_000)
    batched = quantiles_for_rows(network, mdp, rows, max_cells=4)
    positives, lengths = mdp.histories(rows)
    one_by_one = network(positives, mdp.items[rows].unsqueeze(1), lengths.unsqueeze(1))[:, 0]
    assert torch.allclose(whole, one_by_one, atol=1e-6)
    assert torch.allclose(batched, one_by_one, atol=1e-6)
    # Gradients flow through the batched path as through the whole one.
    network.train()
    quantiles_for_rows(network, mdp, rows, max_cells=4).sum().backward()
    assert all(p.grad is not None for p in network.head.parameters())


def test_the_kept_epoch_is_the_best_held_out_action_likelihood(monkeypatch, toy_processed):
    """Selection reads the validation log-likelihood of the logged responses under
    the soft-Q policy, not the IQ-Learn objective: here the objective improves
    every epoch while the likelihood is best at epoch 2, so epoch 2 is kept."""
    from mtrec.config import RewardConfig
    from mtrec.data.processed import load_processed
    from mtrec.reward import train as train_module

    processed = load_processed(toy_processed)
    config = RewardConfig(
        backbone=GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0),
        n_quantiles=2,
        max_epochs=4,
        patience=4,
        device="cpu",
    )
    assert config.monitor == "action_nll"
    logs = train_module.prepare_logs(processed.train, processed.valid, 4)
    snapshots = []
    scripted = iter([(3.0, 0.69), (2.0, 0.60), (1.0, 0.65), (0.5, 0.68)])

    def scripted_metrics(network, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in network.state_dict().items()})
        loss, action_nll = next(scripted)
        return {"loss": loss, "td": 0.0, "value": 0.0, "action_nll": action_nll}

    monkeypatch.setattr(train_module, "validation_metrics", scripted_metrics)
    network, history = train_module.fit_qnetwork(
        config, logs, processed.n_items, torch.device("cpu"), progress=False
    )
    assert len(history) == 4
    assert train_module.best_epoch(history, "action_nll") == 2
    assert train_module.best_epoch(history, "loss") == 4
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, snapshots[1][name]), name
