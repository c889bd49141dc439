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
