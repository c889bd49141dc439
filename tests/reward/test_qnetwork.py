from __future__ import annotations

import pytest
import torch

from mtrec.config import DINConfig, GRU4RecConfig, SASRecConfig
from mtrec.reward.qnetwork import RewardQNetwork, load_qnetwork, save_qnetwork

BACKBONES = [
    SASRecConfig(max_history=4, dim=8, n_layers=1, n_heads=1, ffn_dim=16, dropout=0.0),
    GRU4RecConfig(max_history=4, dim=8, hidden_dim=8, dropout=0.0),
    DINConfig(max_history=4, dim=8, attention_hidden=4, mlp_hidden=(8,), dropout=0.0),
]


def inputs():
    positives = torch.tensor([[3, 4, 0, 0], [5, 6, 7, 2]])
    items = torch.tensor([[1, 2, 3], [4, 5, 0]])
    state_index = torch.tensor([[2, 2, 2], [4, 4, 4]])
    return positives, items, state_index


@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda c: c.kind)
def test_quantiles_have_the_contract_shape_and_do_not_cross(backbone):
    torch.manual_seed(0)
    network = RewardQNetwork(backbone, n_items=9, n_quantiles=5, head_hidden=8)
    out = network(*inputs())
    assert out.shape == (2, 3, 2, 5)
    assert torch.all(out[..., 1:] >= out[..., :-1])


@pytest.mark.parametrize("backbone", BACKBONES[:2], ids=lambda c: c.kind)
def test_a_state_does_not_see_positives_after_it(backbone):
    torch.manual_seed(0)
    network = RewardQNetwork(backbone, n_items=9, n_quantiles=3, head_hidden=8).eval()
    positives, items, _ = inputs()
    state_index = torch.ones_like(items)  # only the first positive is history
    before = network(positives, items, state_index)
    changed = positives.clone()
    changed[:, 1:] = 8
    assert torch.allclose(before, network(changed, items, state_index), atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    network = RewardQNetwork(BACKBONES[0], n_items=9, n_quantiles=3, head_hidden=8).eval()
    save_qnetwork(network, tmp_path / "q", extra={"note": "x"})
    loaded = load_qnetwork(tmp_path / "q")
    assert torch.allclose(network(*inputs()), loaded(*inputs()))
    assert loaded.n_quantiles == 3 and loaded.backbone_config == BACKBONES[0]
