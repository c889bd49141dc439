"""Dot-product recommenders: a sequence encoder composed with the item tower.

CTR logit F(i|h) = state(h) . e_i + b_i, and full-catalogue scoring is one
matrix product with the same embeddings, so ranking and CTR agree.
"""

from __future__ import annotations

import torch
from torch import nn

from mtrec.config import GRU4RecConfig, SASRecConfig
from mtrec.models.base import (
    BackboneModule,
    ExposureOutputs,
    gather_states,
    history_lengths,
    joint_features,
    last_items,
)
from mtrec.models.encoders import GRUEncoder, SASRecEncoder
from mtrec.models.items import ItemTower


class DotProductRecommender(BackboneModule):
    supports_catalogue = True

    def __init__(self, config: SASRecConfig | GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.kind = config.kind
        self.n_items = n_items
        self.max_history = config.max_history
        self.items = ItemTower(n_items, config.dim)
        if isinstance(config, SASRecConfig):
            self.encoder: nn.Module = SASRecEncoder(config, self.items.embedding)
        else:
            self.encoder = GRUEncoder(config, self.items.embedding)
        self.state_dim = config.dim
        self.joint_dim = 3 * config.dim

    @property
    def item_embedding(self) -> nn.Embedding:
        return self.items.embedding

    def encode(self, positives: torch.Tensor) -> torch.Tensor:
        """positives [B, L] right-padded -> states [B, L+1, D]."""
        return self.encoder(positives)

    def exposure_states(self, positives: torch.Tensor, state_index: torch.Tensor) -> torch.Tensor:
        """positives [B, L], state_index [B, M] -> [B, M, D]."""
        return gather_states(self.encode(positives), state_index)

    def logits_from_states(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """states [..., D], items [...] -> [...]."""
        return (states * self.items(items)).sum(-1) + self.items.item_bias(items)

    def shared_item_logits(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """states [n, D], items [C] (the same candidates for every state) -> [n, C]:
        one matrix product, the cost of a sampled softmax over C items."""
        return states @ self.items(items).T + self.items.item_bias(items)

    def catalogue_logits(self, states: torch.Tensor) -> torch.Tensor:
        """states [..., D] -> [..., n_items + 1]; column 0 (padding) is -inf."""
        logits = states @ self.items.embedding.weight.T + self.items.bias.weight.squeeze(-1)
        logits[..., 0] = float("-inf")
        return logits

    def forward(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> ExposureOutputs:
        states = self.exposure_states(positives, state_index)  # [B, M, D]
        return ExposureOutputs(logits=self.logits_from_states(states, items), states=states)

    def exposure_joint(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        states = self.exposure_states(positives, state_index)
        return joint_features(states, self.items(items))  # [B, M, 3D]

    def history_states(self, history: torch.Tensor) -> torch.Tensor:
        """history [B, L'] right-padded, any L' -> state after all of it [B, D]."""
        history = last_items(history, self.max_history)
        states = self.encode(history)
        rows = torch.arange(history.shape[0], device=history.device)
        return states[rows, history_lengths(history)]

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        """history [B, L'] -> CTR logits of every item [B, n_items + 1] (col 0 = -inf)."""
        return self.catalogue_logits(self.history_states(history))

    def score_items(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """history [B, L'], items [B, N] -> CTR logits [B, N]."""
        states = self.history_states(history).unsqueeze(1)  # [B, 1, D]
        return self.logits_from_states(states, items)
