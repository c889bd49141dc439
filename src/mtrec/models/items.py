"""Item tower shared by every backbone: embeddings with a padding row and a bias."""

from __future__ import annotations

import torch
from torch import nn


class ItemTower(nn.Module):
    """`nn.Embedding(n_items + 1, dim, padding_idx=0)` plus a per-item bias.

    Index 0 is padding: its embedding is zero and receives no gradient.
    """

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.bias = nn.Embedding(n_items + 1, 1, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=dim**-0.5)
        nn.init.zeros_(self.bias.weight)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.embedding(items)

    def item_bias(self, items: torch.Tensor) -> torch.Tensor:
        return self.bias(items).squeeze(-1)
