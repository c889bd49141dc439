"""Policies the online harness can put in front of simulated users.

A policy sees only the users' positive histories, in the item indexing of the
processed data (`item_idx` 1..n_items, 0 = padding, right-padded rows: the
convention of `mtrec.models`), and scores the whole catalogue:

    policy.score_all(history LongTensor [B, L]) -> Tensor [B, n_items + 1]

Column 0 (padding) is ignored. Trained recommenders (`mtrec.models.load_model`)
satisfy this protocol directly; `ModelPolicy` adds the device handling and the
mapping between the model's item_idx and the simulator's items.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from mtrec.config import SimulatorConfig
from mtrec.simulator.world import World


class Policy(Protocol):
    def score_all(self, history: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ItemIndexMap:
    """Simulator item k (id str(k + 1)) <-> a policy's item_idx (0 = unknown)."""

    to_policy: np.ndarray  # [n_world_items] int64, 0 where the policy lacks the item
    n_policy_items: int

    @classmethod
    def identity(cls, n_items: int) -> ItemIndexMap:
        return cls(to_policy=np.arange(1, n_items + 1, dtype=np.int64), n_policy_items=n_items)

    @classmethod
    def from_item_ids(cls, world: World, item_ids: Sequence[str]) -> ItemIndexMap:
        """`item_ids[idx - 1]` is the original id of the policy's item_idx `idx`."""
        position = {str(item_id): idx for idx, item_id in enumerate(item_ids, start=1)}
        to_policy = np.array([position.get(str(i), 0) for i in world.item_ids], dtype=np.int64)
        return cls(to_policy=to_policy, n_policy_items=len(item_ids))

    @classmethod
    def from_items_table(cls, world: World, items: pd.DataFrame) -> ItemIndexMap:
        """From the processed `items.parquet` (`item_idx`, `item_id`)."""
        ordered = items.sort_values("item_idx")
        if not np.array_equal(ordered["item_idx"].to_numpy(), np.arange(1, len(ordered) + 1)):
            raise ValueError("items table must hold item_idx 1..n_items exactly once")
        return cls.from_item_ids(world, ordered["item_id"].astype(str).tolist())

    def to_world(self) -> np.ndarray:
        """[n_policy_items + 1]: simulator item of each item_idx (-1 = none)."""
        out = np.full(self.n_policy_items + 1, -1, dtype=np.int64)
        known = self.to_policy > 0
        out[self.to_policy[known]] = np.flatnonzero(known)
        return out

    def per_policy_item(self, world_values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Ground-truth item values in the policy's indexing ([n_policy_items + 1, ...])."""
        out = np.full((self.n_policy_items + 1, *world_values.shape[1:]), fill, dtype=float)
        known = self.to_policy > 0
        out[self.to_policy[known]] = world_values[known]
        return out


def _with_padding_column(scores: torch.Tensor) -> torch.Tensor:
    scores[:, 0] = -torch.inf
    return scores


class RandomPolicy:
    """Uniformly random ranking (its own seeded generator)."""

    def __init__(self, n_items: int, seed: int = 0):
        self.n_items = n_items
        self.generator = torch.Generator().manual_seed(seed)

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        scores = torch.rand(history.shape[0], self.n_items + 1, generator=self.generator)
        return _with_padding_column(scores)


class PopularityPolicy:
    """Most clicked items first (clicks counted in a log, ties broken by id)."""

    def __init__(self, item_clicks: np.ndarray):
        # Ties broken by index so the ranking is deterministic.
        tie_break = -np.arange(len(item_clicks)) * 1e-9
        self.scores = torch.as_tensor(item_clicks + tie_break, dtype=torch.float32)

    @classmethod
    def from_log(
        cls, frame: pd.DataFrame, item_map: ItemIndexMap, world: World
    ) -> PopularityPolicy:
        clicks = frame.loc[frame["response"] == 1, "item_id"].astype(str).value_counts()
        world_clicks = clicks.reindex(world.item_ids, fill_value=0).to_numpy(dtype=float)
        return cls(item_map.per_policy_item(world_clicks))

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        scores = self.scores.expand(history.shape[0], -1).clone()
        return _with_padding_column(scores)


class QualityOracle:
    """Knows every item's true quality (not the users' tastes): an upper-bound
    style policy for the harness, never available to a real recommender."""

    def __init__(self, world: World, item_map: ItemIndexMap):
        values = item_map.per_policy_item(world.item_quality, fill=-np.inf)
        self.scores = torch.as_tensor(values, dtype=torch.float32)

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        return _with_padding_column(self.scores.expand(history.shape[0], -1).clone())


class UserStateOracle(ABC):
    """Base of the oracles that read the simulated users' hidden state: their
    current interest (it drifts while they interact) and susceptibility. The
    online harness calls `world_scores` with the state of the users it serves
    instead of `score_all` with their histories. Upper bounds for the headroom
    table, never available to a real recommender."""

    def __init__(self, world: World, config: SimulatorConfig):
        self.world = world
        self.config = config

    @abstractmethod
    def world_scores(self, interest: np.ndarray, users: np.ndarray) -> np.ndarray:
        """interest [B, T] of world users `users` [B] -> scores [B, n_world_items]."""


class CTROracle(UserStateOracle):
    """Ranks by each user's true click probability now (fit and clickbait):
    what a perfect CTR model would show."""

    def world_scores(self, interest: np.ndarray, users: np.ndarray) -> np.ndarray:
        c = self.config
        fit = interest @ self.world.item_topics.T  # [B, n_items]
        bait = self.world.user_susceptibility[users, None] * self.world.item_clickbait[None, :]
        # The logit ranks like the probability.
        return c.click_bias + c.click_fit_weight * fit + c.click_bait_weight * bait


class SatisfactionOracle(UserStateOracle):
    """Ranks by each user's true expected mental reward of a click now (fit and
    quality, no clickbait): what a perfect reward model would show."""

    def world_scores(self, interest: np.ndarray, users: np.ndarray) -> np.ndarray:
        c = self.config
        fit = interest @ self.world.item_topics.T
        return (
            c.reward_bias
            + c.reward_fit_weight * fit
            + c.reward_quality_weight * self.world.item_quality[None, :]
        )


class TopicAffinityPolicy:
    """Scores items by the overlap of their topics with the mean topic mixture
    of the history: a toy content-based recommender (topics are item side
    information, not the user's hidden interest)."""

    def __init__(self, world: World, item_map: ItemIndexMap):
        topics = item_map.per_policy_item(world.item_topics)
        self.item_topics = torch.as_tensor(topics, dtype=torch.float32)  # [n+1, T], row 0 zero

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        profile = self.item_topics[history].sum(dim=1)  # [B, T]; padding rows are zero
        profile = profile / (history > 0).sum(dim=1, keepdim=True).clamp(min=1)
        return _with_padding_column(profile @ self.item_topics.T)


class ModelPolicy:
    """A trained `mtrec.models` recommender in the loop (no gradients, its device)."""

    def __init__(self, model: torch.nn.Module, device: torch.device | None = None):
        self.model = model.eval()
        self.device = device or next(model.parameters()).device

    @classmethod
    def from_path(cls, path: str | Path, world: World) -> tuple[ModelPolicy, ItemIndexMap]:
        from mtrec.models import load_item_ids, load_model

        model = load_model(path)
        item_ids = load_item_ids(path)
        if item_ids is None:
            item_map = ItemIndexMap.identity(model.n_items)
        else:
            item_map = ItemIndexMap.from_item_ids(world, item_ids)
        return cls(model), item_map

    @torch.no_grad()
    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        scores = self.model.score_all(history.to(self.device)).float().cpu()
        return _with_padding_column(scores)
