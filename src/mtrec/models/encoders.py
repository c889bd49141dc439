"""Sequence encoders: positives [B, L] (right-padded) -> states [B, L + 1, D].

State j is the user's state after the first j positives of the row: state 0
comes from a learned begin-of-sequence vector alone, state j from BOS and
positives 1..j. The encoders are causal, so trailing padding never changes an
earlier state and one forward pass yields the state for every position.
"""

from __future__ import annotations

import torch
from torch import nn

from mtrec.config import GRU4RecConfig, SASRecConfig


def _with_bos(embedded: torch.Tensor, bos: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B, L + 1, D] with the BOS vector first."""
    batch = embedded.shape[0]
    return torch.cat([bos.expand(batch, 1, -1), embedded], dim=1)


class SASRecEncoder(nn.Module):
    """Post-norm transformer blocks with a causal mask and learned positions."""

    def __init__(self, config: SASRecConfig, item_embedding: nn.Embedding) -> None:
        super().__init__()
        dim = config.dim
        self.item_embedding = item_embedding
        self.bos = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.position = nn.Embedding(config.max_history + 1, dim)
        self.input_norm = nn.LayerNorm(dim)
        self.input_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=config.n_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.out_dim = dim

    def forward(self, positives: torch.Tensor) -> torch.Tensor:
        # positives: [B, L] item_idx, right-padded with 0
        inputs = _with_bos(self.item_embedding(positives), self.bos)  # [B, L+1, D]
        length = inputs.shape[1]
        positions = torch.arange(length, device=positives.device)
        inputs = self.input_dropout(self.input_norm(inputs + self.position(positions)))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=positives.device)
        return self.blocks(inputs, mask=causal, is_causal=True)  # [B, L+1, D]


class GRUEncoder(nn.Module):
    """Embedding dropout, a GRU and a projection back to the item space."""

    def __init__(self, config: GRU4RecConfig, item_embedding: nn.Embedding) -> None:
        super().__init__()
        dim = config.dim
        self.item_embedding = item_embedding
        self.bos = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.input_dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(dim, config.hidden_dim, num_layers=config.n_layers, batch_first=True)
        self.projection = nn.Linear(config.hidden_dim, dim)
        self.out_dim = dim

    def forward(self, positives: torch.Tensor) -> torch.Tensor:
        inputs = _with_bos(self.item_embedding(positives), self.bos)  # [B, L+1, D]
        hidden, _ = self.gru(self.input_dropout(inputs))  # [B, L+1, H]
        return self.projection(hidden)  # [B, L+1, D]
