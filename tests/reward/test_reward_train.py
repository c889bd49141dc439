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
