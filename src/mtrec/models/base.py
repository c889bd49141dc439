"""Tensor helpers, the output record and the module base shared by the backbones."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ExposureOutputs:
    """What one forward pass over a batch of windows gives the losses.

    `logits` [B, M]: the CTR logit F(i|h) of every exposure slot (padding
    slots hold garbage; losses mask them). `states` [B, M, D]: the state each
    exposure sees, for dot-product backbones only (None for DIN); with it a
    loss can ask the model for full-catalogue logits (`catalogue_logits`).
    """

    logits: torch.Tensor
    states: torch.Tensor | None = None


class BackboneModule(nn.Module):
    """Base of the backbones: what the contract derives the same way from
    each backbone's `forward` (positives, items, state_index) -> ExposureOutputs."""

    def exposure_logits(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        """positives [B, L], items [B, M], state_index [B, M] -> CTR logits [B, M]."""
        return self.forward(positives, items, state_index).logits


def gather_states(states: torch.Tensor, state_index: torch.Tensor) -> torch.Tensor:
    """states [B, L+1, D], state_index [B, M] in 0..L -> [B, M, D]."""
    index = state_index.unsqueeze(-1).expand(-1, -1, states.shape[-1])
    return states.gather(1, index)


def history_lengths(history: torch.Tensor) -> torch.Tensor:
    """Number of non-padding items per row of a right-padded history [B, L]."""
    return (history > 0).sum(dim=1)


def last_items(history: torch.Tensor, max_history: int) -> torch.Tensor:
    """Keep the last `max_history` items of each right-padded row.

    history [B, L] (items first, then zeros) -> [B, min(L, max_history)],
    still right-padded.
    """
    width = history.shape[1]
    if width <= max_history:
        return history
    lengths = history_lengths(history)
    start = (lengths - max_history).clamp(min=0)  # [B]
    index = start.unsqueeze(1) + torch.arange(max_history, device=history.device)
    valid = index < lengths.unsqueeze(1)
    picked = history.gather(1, index.clamp(max=width - 1))
    return picked * valid


def joint_features(state: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
    """[..., D], [..., D] -> [..., 3D]: state, item and their product."""
    return torch.cat([state, item, state * item], dim=-1)
