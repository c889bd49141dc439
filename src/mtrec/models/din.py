"""DIN: target attention over the positive history, then an MLP CTR head.

The state is item-dependent, so DIN has no `catalogue_logits`; full-catalogue
scoring runs the target attention for chunks of items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mtrec.config import DINConfig
from mtrec.models.base import (
    BackboneModule,
    ExposureOutputs,
    history_lengths,
    joint_features,
    last_items,
)
from mtrec.models.candidates import candidate_scores, covisitation_table
from mtrec.models.items import ItemTower

if TYPE_CHECKING:
    import pandas as pd

ATTENTION_BUDGET = 2**24


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(size_in, size_out), nn.PReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class DINRecommender(BackboneModule):
    supports_catalogue = False

    def __init__(self, config: DINConfig, n_items: int) -> None:
        super().__init__()
        dim, hidden = config.dim, config.attention_hidden
        self.config = config
        self.kind = config.kind
        self.n_items = n_items
        self.max_history = config.max_history
        self.score_chunk = config.score_chunk
        self.items = ItemTower(n_items, dim)
        # A learned BOS "item" every exposure may attend to, so an empty
        # history still has a state (state 0, as in the sequence encoders).
        self.bos = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        # First attention layer on [h, t, h - t, h * t], expanded so the
        # [B, M, L, D] product is never materialised: the h*t term is
        # computed as e_t . (h ⊙ W_product).
        self.attention_history = nn.Linear(dim, hidden)
        self.attention_target = nn.Linear(dim, hidden, bias=False)
        self.attention_product = nn.Parameter(torch.randn(dim, hidden) * dim**-0.5)
        # ReLU rather than DIN's PReLU/Dice here: this activation runs on the
        # largest tensor of the model ([B, M, L+1, A]) and ReLU's backward is
        # the cheapest (PReLU took a third of the CPU time per batch).
        self.attention_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 1))
        self.mlp = _mlp([3 * dim, *config.mlp_hidden], config.dropout)
        self.mlp_out = nn.Linear(([3 * dim, *config.mlp_hidden])[-1], 1)
        self.joint_dim = 3 * dim
        if config.candidates:
            # The candidate stage's table (fit_candidates), saved with the weights.
            size, width = n_items + 1, config.candidate_neighbours
            self.register_buffer("candidate_table", torch.zeros(size, width, dtype=torch.long))
            self.register_buffer("candidate_weights", torch.zeros(size, width))
            self.register_buffer("candidate_popularity", torch.zeros(size))
            self.register_buffer("candidates_fitted", torch.zeros((), dtype=torch.bool))

    @property
    def has_candidate_stage(self) -> bool:
        return bool(self.config.candidates)

    def fit_candidates(self, train: pd.DataFrame) -> None:
        """Fill the candidate stage's table from the train log (user then event order)."""
        if not self.has_candidate_stage:
            raise ValueError("this DIN scores every item (config.candidates is 0)")
        table, weights, popularity = covisitation_table(
            train, self.n_items, self.config.candidate_neighbours
        )
        self.candidate_table.copy_(table)
        self.candidate_weights.copy_(weights)
        self.candidate_popularity.copy_(popularity)
        self.candidates_fitted.fill_(True)

    def candidate_scores(self, history: torch.Tensor) -> torch.Tensor:
        """The candidate stage alone: history [B, L'] -> [B, n_items + 1]."""
        if not self.has_candidate_stage:
            raise RuntimeError("this DIN has no candidate stage (config.candidates is 0)")
        if not bool(self.candidates_fitted):
            raise RuntimeError("the candidate stage was never fitted (fit_candidates)")
        return candidate_scores(
            history, self.candidate_table, self.candidate_weights, self.candidate_popularity
        )

    @property
    def item_embedding(self) -> nn.Embedding:
        return self.items.embedding

    def _interest(
        self, positives: torch.Tensor, targets: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        """positives [B, L], targets [B, M, D], state_index [B, M] -> [B, M, D]."""
        batch, width = positives.shape
        bos = self.bos.expand(batch, 1, -1)
        history = torch.cat([bos, self.items(positives)], 1)  # [B, L+1, D]
        hidden = self.config.attention_hidden
        # Pre-activation [B, M, L+1, A] = W_h h + W_t t + t . (h ⊙ W_p).
        per_history = self.attention_history(history)  # [B, L+1, A]
        per_target = self.attention_target(targets)  # [B, M, A]
        weighted = history.unsqueeze(-1) * self.attention_product  # [B, L+1, D, A]
        weighted = weighted.permute(0, 1, 3, 2).reshape(batch, (width + 1) * hidden, -1)
        product = torch.bmm(targets, weighted.transpose(1, 2))  # [B, M, (L+1)*A]
        product = product.view(batch, targets.shape[1], width + 1, hidden)
        pre = product + per_history.unsqueeze(1) + per_target.unsqueeze(2)
        scores = self.attention_out(pre).squeeze(-1)  # [B, M, L+1]
        # Position k (k = 0 is BOS) is visible to a state j iff k <= j.
        positions = torch.arange(width + 1, device=positives.device)
        visible = positions.view(1, 1, -1) <= state_index.unsqueeze(-1)
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        return torch.bmm(weights.view(batch, -1, width + 1), history).view_as(targets)

    def _joint(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        targets = self.items(items)  # [B, M, D]
        return joint_features(self._interest(positives, targets, state_index), targets)

    def _logits_from_joint(self, joint: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.mlp_out(self.mlp(joint)).squeeze(-1) + self.items.item_bias(items)

    def forward(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> ExposureOutputs:
        joint = self._joint(positives, items, state_index)
        return ExposureOutputs(logits=self._logits_from_joint(joint, items))

    def exposure_joint(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        return self._joint(positives, items, state_index)  # [B, M, 3D]

    def score_items(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """history [B, L'] right-padded, items [B, N] -> CTR logits [B, N]."""
        history = last_items(history, self.max_history)
        state_index = history_lengths(history).unsqueeze(1).expand_as(items)
        return self.exposure_logits(history, items, state_index)

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        """history [B, L'] -> [B, n_items + 1] (col 0 = -inf): every item in item
        chunks, or with a candidate stage DIN's logits on the K candidates and
        -inf elsewhere."""
        if self.has_candidate_stage:
            return self._score_candidates(history)
        batch = history.shape[0]
        history = last_items(history, self.max_history)
        out = torch.empty(batch, self.n_items + 1, device=history.device)
        out[:, 0] = float("-inf")
        size = self._item_chunk(history)
        for start in range(1, self.n_items + 1, size):
            stop = min(start + size, self.n_items + 1)
            items = torch.arange(start, stop, device=history.device).expand(batch, -1)
            out[:, start:stop] = self.score_items(history, items)
        return out

    def candidate_items(self, history: torch.Tensor) -> torch.Tensor:
        """The K items the candidate stage passes to DIN: [B, K], -1 in a slot a
        short catalogue or long history leaves empty (no finite first-stage score)."""
        first = self.candidate_scores(history)
        k = min(self.config.candidates, self.n_items)
        top = torch.topk(first, k, dim=1)  # distinct items, strongest first
        return top.indices.masked_fill(~torch.isfinite(top.values), -1)

    def _score_candidates(self, history: torch.Tensor) -> torch.Tensor:
        picked = self.candidate_items(history)
        finite = picked >= 0
        candidates = picked.clamp(min=0)  # empty slots point at padding (column 0)
        logits = torch.cat(
            [
                self.score_items(history, part)
                for part in torch.split(candidates, self._item_chunk(history), dim=1)
            ],
            dim=1,
        )
        out = torch.full((history.shape[0], self.n_items + 1), float("-inf"), device=history.device)
        return out.scatter_(1, candidates, logits.masked_fill(~finite, float("-inf")))

    def _item_chunk(self, history: torch.Tensor) -> int:
        """Items per score_items call: attention activations are [B, chunk, L+1, A];
        keep them near 2**24 floats."""
        width = min(history.shape[1], self.max_history)
        per_item = max(1, history.shape[0] * (width + 1) * self.config.attention_hidden)
        return max(1, min(self.score_chunk, ATTENTION_BUDGET // per_item))
