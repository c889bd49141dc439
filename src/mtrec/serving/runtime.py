"""In-process inference for the service, the MLflow pyfunc and the benchmark.

Maps original item ids to model indices, checks every request field, and
calls the recommender (`mtrec.models`) and, when one is packaged, the mental
reward Q-network (`mtrec.reward.qnetwork`). Imports nothing from training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtrec.models import load_item_ids, load_model, read_model_description


class RequestError(ValueError):
    """A request the caller must fix; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RewardModelMissing(RuntimeError):
    """No mental reward model was packaged with the champion."""


@dataclass(frozen=True)
class RuntimeLimits:
    max_history: int = 200
    max_items_per_request: int = 1000
    # Next displayed items sampled to estimate E_{i'}[V(h + [i], i')] in the read-out.
    reward_next_items: int = 16


@dataclass(frozen=True)
class RewardModel:
    """The packaged mental reward model and the read-out settings it was trained
    with (the pipeline's read-out uses the same: METHOD.md §6, `mtrec.reward.readout`)."""

    network: torch.nn.Module
    gamma: float = 0.9
    cvar_level: float = 0.3
    # Distribution of the next displayed item i' (the training log's; None: uniform).
    next_items: torch.Tensor | None = None

    @classmethod
    def load(cls, folder: Path, device: torch.device) -> RewardModel:
        from mtrec.config import RewardConfig
        from mtrec.reward.qnetwork import (
            load_next_item_distribution,
            load_qnetwork,
            read_qnetwork_description,
        )

        metadata = read_qnetwork_description(folder).get("metadata") or {}
        saved = metadata.get("reward") or {}
        defaults = RewardConfig()
        return cls(
            load_qnetwork(folder, device=device),
            float(saved.get("gamma", defaults.gamma)),
            float(saved.get("cvar_level", defaults.cvar_level)),
            load_next_item_distribution(folder),
        )


class RecommenderRuntime:
    """A loaded champion: `recommend` and `mental_reward` on original item ids."""

    def __init__(
        self,
        model: torch.nn.Module,
        item_ids: list[str] | None,
        reward: RewardModel | None = None,
        limits: RuntimeLimits | None = None,
        description: dict | None = None,
    ) -> None:
        self.model = model
        self.n_items = int(model.n_items)
        # Without items.json the ids are the model's own indices, as strings.
        self.item_ids = item_ids or [str(i) for i in range(1, self.n_items + 1)]
        self.index_of = {item_id: idx for idx, item_id in enumerate(self.item_ids, start=1)}
        self.reward = reward
        self.limits = limits or RuntimeLimits()
        self.description = description or {}
        self.device = next(model.parameters()).device

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        reward_dir: str | Path | None = None,
        limits: RuntimeLimits | None = None,
        device: str | torch.device | None = None,
    ) -> RecommenderRuntime:
        model = load_model(model_dir, device=device)
        reward = None
        if reward_dir is not None and Path(reward_dir, "config.json").exists():
            reward = RewardModel.load(Path(reward_dir), next(model.parameters()).device)
        return cls(
            model,
            load_item_ids(model_dir),
            reward,
            limits,
            read_model_description(model_dir),
        )

    @property
    def reward_network(self) -> torch.nn.Module | None:
        return self.reward.network if self.reward is not None else None

    # --- request checks -------------------------------------------------------

    def indices(self, ids: list[Any], field: str, allow_empty: bool, limit: int) -> list[int]:
        if not isinstance(ids, list):
            raise RequestError(field, "must be a list of item ids")
        if not ids and not allow_empty:
            raise RequestError(field, "must not be empty")
        if len(ids) > limit:
            raise RequestError(field, f"has {len(ids)} entries; at most {limit} are allowed")
        out, unknown = [], []
        for item in ids:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise RequestError(field, f"item ids must be strings or integers, got {item!r}")
            idx = self.index_of.get(str(item))
            if idx is None:
                unknown.append(str(item))
            else:
                out.append(idx)
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise RequestError(field, f"{len(unknown)} unknown item id(s): {shown}")
        return out

    def _history_tensor(self, history: list[int]) -> torch.Tensor:
        # Right-padded [1, L]; an empty history is a single padding slot (state 0).
        return torch.tensor([history or [0]], dtype=torch.long, device=self.device)

    # --- endpoints ------------------------------------------------------------

    @torch.no_grad()
    def ctr_probabilities(self, history: list[int]) -> torch.Tensor:
        """[n_items + 1] P(click) of every item after `history` (index 0 = 0)."""
        logits = self.model.score_all(self._history_tensor(history))[0]
        return torch.sigmoid(logits)

    def recommend(self, history_ids: list[Any], k: Any, exclude_history: Any) -> dict[str, Any]:
        if isinstance(k, bool) or not isinstance(k, int):
            raise RequestError("k", f"must be an integer, got {k!r}")
        if not isinstance(exclude_history, bool):
            raise RequestError("exclude_history", "must be true or false")
        history = self.indices(history_ids, "history", True, self.limits.max_history)
        available = self.n_items - (len(set(history)) if exclude_history else 0)
        if k <= 0 or k > available:
            raise RequestError("k", f"must be between 1 and {available} (catalogue), got {k}")
        probs = self.ctr_probabilities(history).clone()
        probs[0] = -1.0
        if exclude_history and history:
            probs[torch.tensor(history, device=probs.device)] = -1.0
        top = torch.topk(probs, k)
        items = top.indices.tolist()
        expected = (
            self._reward_summary(history, items)["mean"].tolist() if self.reward_network else None
        )
        return {
            "items": [
                {
                    "item_id": self.item_ids[idx - 1],
                    "ctr": float(score),
                    "expected_mental_reward": None if expected is None else float(expected[n]),
                }
                for n, (idx, score) in enumerate(zip(items, top.values.tolist(), strict=True))
            ],
            "reward_model": self.reward_network is not None,
        }

    def mental_reward(self, history_ids: list[Any], item_ids: list[Any]) -> dict[str, Any]:
        if self.reward_network is None:
            raise RewardModelMissing("no mental reward model was packaged with this champion")
        history = self.indices(history_ids, "history", True, self.limits.max_history)
        items = self.indices(item_ids, "items", False, self.limits.max_items_per_request)
        summary = self._reward_summary(history, items)
        return {
            "quantile_levels": summary["levels"],
            "cvar_level": self.reward.cvar_level,
            "items": [
                {
                    "item_id": self.item_ids[idx - 1],
                    "quantiles": summary["quantiles"][n].tolist(),
                    "mean": float(summary["mean"][n]),
                    "cvar": float(summary["cvar"][n]),
                }
                for n, idx in enumerate(items)
            ],
        }

    @torch.no_grad()
    def _reward_summary(self, history: list[int], items: list[int]) -> dict[str, Any]:
        """Read-out for a click on each item: r_k(s, 1) = lambda_k(s, 1) - gamma E_i'[V(s')].

        s = (h, i); s' = (h + [i], i') with i' drawn from the training log's display
        distribution (fixed seed), V(s') = logsumexp_a Q(s', a): the expected-next-value
        read-out of METHOD.md §6, as `mtrec.reward.readout` computes it (the observed
        next item is unknown at serving time).
        """
        from mtrec.reward.losses import soft_value
        from mtrec.reward.readout import cvar_of_quantiles

        reward = self.reward
        network = reward.network
        n_items = len(items)
        hist = self._history_tensor(history)  # [1, L]
        length = len(history)
        item_tensor = torch.tensor([items], dtype=torch.long, device=self.device)  # [1, M]
        state = torch.full_like(item_tensor, length)
        now = network(hist, item_tensor, state)[0, :, 1, :]  # [M, N] action "click"

        # Next states: every candidate appended to the history, then i' sampled.
        extended = torch.zeros(n_items, length + 1, dtype=torch.long, device=self.device)
        if length:
            extended[:, :length] = hist[0, :length]
        extended[:, length] = item_tensor[0]
        draw = reward.next_items
        if draw is None:  # a model saved without its log's distribution: uniform
            draw = torch.ones(self.n_items + 1, dtype=torch.float64)
            draw[0] = 0.0
        next_items = torch.multinomial(
            draw,
            self.limits.reward_next_items,
            replacement=True,
            generator=torch.Generator().manual_seed(0),  # same request, same answer
        ).to(self.device)
        next_items = next_items.expand(n_items, -1)  # [M, S]
        next_state = torch.full_like(next_items, length + 1)
        next_quantiles = network(extended, next_items, next_state)  # [M, S, 2, N]
        next_value = soft_value(next_quantiles.flatten(0, 1)).view(n_items, -1).mean(dim=1)

        quantiles = now - reward.gamma * next_value.unsqueeze(-1)  # [M, N]
        quantiles, _ = torch.sort(quantiles, dim=-1)
        n_quantiles = quantiles.shape[-1]
        return {
            "levels": [(2 * k - 1) / (2 * n_quantiles) for k in range(1, n_quantiles + 1)],
            "quantiles": quantiles.cpu(),
            "mean": quantiles.mean(dim=-1).cpu(),
            "cvar": cvar_of_quantiles(quantiles, reward.cvar_level).cpu(),
        }
