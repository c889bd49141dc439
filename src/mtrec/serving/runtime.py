"""In-process inference for the service, the MLflow pyfunc and the benchmark.

Maps original item ids to model indices, checks every request field, and
calls the recommender (`mtrec.models`) and, when one is packaged, the mental
reward Q-network (`mtrec.reward.qnetwork`), read out by the function the
pipeline's read-out uses (`mtrec.reward.inference.expected_reward`). Imports
nothing from training.

Requests are checked one at a time (`check_recommend`, `check_mental_reward`)
and answered in batches (`answer`): one recommender forward pass for every
`/recommend` of the batch and one reward read-out for every (history, items)
pair, so concurrent requests share the work (the service's micro-batcher,
`mtrec.serving.batching`, forms the batches). `recommend` and `mental_reward`
are the same path with a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtrec.models import load_item_ids, load_model, read_model_description
from mtrec.reward.inference import expected_reward, sample_next_items

# Characters of an offending value an error message shows (ids are truncated and counted).
PREVIEW_CHARS = 32
# Unknown ids an error message names (the count is always given).
SHOWN_UNKNOWN = 3
# Candidate (history, item) pairs per reward read-out forward pass: bounds its memory.
REWARD_PAIRS_PER_PASS = 2048


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A bounded, escaped rendering of a request value for error messages and logs:
    strings are cut at `limit` characters (the rest is counted), never echoed whole."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"<integer of {value.bit_length()} bits>"
        text = str(value)
        return text if len(text) <= limit else f"{text[:limit]}... (+{len(text) - limit} digits)"
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... (+{len(value) - limit} chars)"
    return f"<{type(value).__name__}>"


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
    # Longest item id (characters) a request may carry; the OpenAPI schema declares it.
    max_id_length: int = 128
    # Next displayed items sampled to estimate E_{i'}[V(h + [i], i')] in the read-out.
    reward_next_items: int = 16


@dataclass(frozen=True)
class RecommendQuery:
    """A checked /recommend request: model indices."""

    history: list[int]
    k: int
    exclude_history: bool


@dataclass(frozen=True)
class RewardQuery:
    """A checked /mental_reward request: model indices."""

    history: list[int]
    items: list[int]


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
        # Precomputed once per model: the catalogue matrix of dot-product backbones
        # (ranking is then one matrix product per batch) and the read-out's draw of
        # next displayed items (a fixed seed: the same for every request).
        self._catalogue = self._catalogue_matrix(model)
        self._next_item_draw = self._draw_next_items() if reward is not None else None

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
        out, unknown, n_unknown = [], [], 0
        for item in ids:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise RequestError(
                    field, f"item ids must be strings or integers, got {preview(item)}"
                )
            idx = self.index_of.get(item if isinstance(item, str) else preview(item))
            if idx is None:
                n_unknown += 1
                if len(unknown) < SHOWN_UNKNOWN:
                    unknown.append(preview(item))
            else:
                out.append(idx)
        if n_unknown:
            more = " ..." if n_unknown > len(unknown) else ""
            raise RequestError(field, f"{n_unknown} unknown item id(s): {', '.join(unknown)}{more}")
        return out

    def check_recommend(self, history_ids: Any, k: Any, exclude_history: Any) -> RecommendQuery:
        if isinstance(k, bool) or not isinstance(k, int):
            raise RequestError("k", f"must be an integer, got {preview(k)}")
        if not isinstance(exclude_history, bool):
            raise RequestError("exclude_history", "must be true or false")
        history = self.indices(history_ids, "history", True, self.limits.max_history)
        available = self.n_items - (len(set(history)) if exclude_history else 0)
        if k <= 0 or k > available:
            raise RequestError(
                "k", f"must be between 1 and {available} (catalogue), got {preview(k)}"
            )
        return RecommendQuery(history, k, exclude_history)

    def check_mental_reward(self, history_ids: Any, item_ids: Any) -> RewardQuery:
        if self.reward_network is None:
            raise RewardModelMissing("no mental reward model was packaged with this champion")
        history = self.indices(history_ids, "history", True, self.limits.max_history)
        items = self.indices(item_ids, "items", False, self.limits.max_items_per_request)
        return RewardQuery(history, items)

    def warm_up(self) -> None:
        """Answer a few throw-away batches, so the first real requests do not pay for
        lazy imports and first-call set-up (seconds on a small machine)."""
        probe = [self.item_ids[0]] if self.item_ids else []
        queries: list[RecommendQuery | RewardQuery] = [
            self.check_recommend([], 1, True),
            self.check_recommend(probe, min(10, self.n_items - 1) or 1, False),
        ]
        if self.reward_network is not None:
            queries.append(self.check_mental_reward(probe, probe))
        for size in (1, len(queries)):
            self.answer(queries[:size])

    # --- endpoints ------------------------------------------------------------

    def recommend(self, history_ids: list[Any], k: Any, exclude_history: Any) -> dict[str, Any]:
        return self.answer([self.check_recommend(history_ids, k, exclude_history)])[0]

    def mental_reward(self, history_ids: list[Any], item_ids: list[Any]) -> dict[str, Any]:
        return self.answer([self.check_mental_reward(history_ids, item_ids)])[0]

    @torch.no_grad()
    def answer(self, queries: list[RecommendQuery | RewardQuery]) -> list[dict[str, Any]]:
        """The answers to checked queries, in order: one recommender forward pass for
        all the /recommend queries, one reward read-out for every (history, items) pair."""
        recommend = [n for n, q in enumerate(queries) if isinstance(q, RecommendQuery)]
        ranked = dict(zip(recommend, self._top_k([queries[n] for n in recommend]), strict=True))
        pairs, owners = [], []
        if self.reward_network is not None:
            for n, query in enumerate(queries):
                items = ranked[n][0] if n in ranked else query.items
                pairs.append((query.history, items))
                owners.append(n)
        summaries = dict(zip(owners, self._reward_summaries(pairs), strict=True))
        return [
            self._recommend_answer(*ranked[n], summaries.get(n))
            if n in ranked
            else self._mental_reward_answer(query.items, summaries[n])
            for n, query in enumerate(queries)
        ]

    def _recommend_answer(
        self, items: list[int], ctr: list[float], summary: dict[str, Any] | None
    ) -> dict[str, Any]:
        expected = None if summary is None else summary["mean"].tolist()
        return {
            "items": [
                {
                    "item_id": self.item_ids[idx - 1],
                    "ctr": score,
                    "expected_mental_reward": None if expected is None else expected[n],
                }
                for n, (idx, score) in enumerate(zip(items, ctr, strict=True))
            ],
            "reward_model": self.reward_network is not None,
        }

    def _mental_reward_answer(self, items: list[int], summary: dict[str, Any]) -> dict[str, Any]:
        quantiles = summary["quantiles"].tolist()
        means, cvars = summary["mean"].tolist(), summary["cvar"].tolist()
        return {
            "quantile_levels": summary["levels"],
            "cvar_level": self.reward.cvar_level,
            "items": [
                {
                    "item_id": self.item_ids[idx - 1],
                    "quantiles": quantiles[n],
                    "mean": means[n],
                    "cvar": cvars[n],
                }
                for n, idx in enumerate(items)
            ],
        }

    # --- the recommender --------------------------------------------------------

    @staticmethod
    def _catalogue_matrix(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(E^T [D, n_items + 1], b [n_items + 1]) of a dot-product backbone, else None."""
        if not getattr(model, "supports_catalogue", False):
            return None
        with torch.no_grad():
            weight = model.items.embedding.weight.detach().t().contiguous()
            bias = model.items.bias.weight.detach().squeeze(-1).clone()
        return weight, bias

    def _history_batch(self, histories: list[list[int]]) -> torch.Tensor:
        """Right-padded [B, L]; an empty history is a single padding slot (state 0)."""
        width = max([1, *map(len, histories)])
        rows = [h + [0] * (width - len(h)) for h in histories]
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def ctr_probabilities_many(self, histories: list[list[int]]) -> torch.Tensor:
        """[B, n_items + 1] P(click) of every item after each history (column 0 = 0)."""
        batch = self._history_batch(histories)
        if self._catalogue is not None:  # F(i|h) = state(h) . e_i + b_i, all i at once
            weight, bias = self._catalogue
            logits = torch.addmm(bias, self.model.history_states(batch), weight)
            logits[:, 0] = float("-inf")
        else:
            logits = self.model.score_all(batch)
        return torch.sigmoid(logits)

    def ctr_probabilities(self, history: list[int]) -> torch.Tensor:
        """[n_items + 1] P(click) of every item after `history` (index 0 = 0)."""
        return self.ctr_probabilities_many([history])[0]

    def _top_k(self, queries: list[RecommendQuery]) -> list[tuple[list[int], list[float]]]:
        """(items, their CTR) of each query's top k, by `torch.topk` over the catalogue."""
        if not queries:
            return []
        probs = self.ctr_probabilities_many([q.history for q in queries])
        ctr = probs.clone()
        ctr[:, 0] = -1.0
        rows = [n for n, q in enumerate(queries) if q.exclude_history for _ in q.history]
        cols = [i for q in queries if q.exclude_history for i in q.history]
        if rows:
            ctr[torch.tensor(rows, device=ctr.device), torch.tensor(cols, device=ctr.device)] = -1.0
        top = torch.topk(ctr, max(q.k for q in queries), dim=1)
        items, values = top.indices.tolist(), top.values.tolist()
        return [(items[n][: q.k], values[n][: q.k]) for n, q in enumerate(queries)]

    # --- the mental reward read-out ---------------------------------------------

    def _draw_next_items(self) -> torch.Tensor:
        """The next displayed items i' of the read-out: S draws from the training log's
        display distribution (uniform without one), with a fixed seed: [S]."""
        draw = self.reward.next_items
        if draw is None:  # a model saved without its log's distribution: uniform
            draw = torch.ones(self.n_items + 1, dtype=torch.float64)
            draw[0] = 0.0
        generator = torch.Generator().manual_seed(0)  # same request, same answer
        return sample_next_items(draw, 1, self.limits.reward_next_items, generator)[0].to(
            self.device
        )

    def _reward_summary(self, history: list[int], items: list[int]) -> dict[str, Any]:
        """The read-out of one (history, items) pair (see `_reward_summaries`)."""
        return self._reward_summaries([(history, items)])[0]

    @torch.no_grad()
    def _reward_summaries(self, pairs: list[tuple[list[int], list[int]]]) -> list[dict[str, Any]]:
        """Read-out for a click on each item: r_k(s, 1) = lambda_k(s, 1) - gamma E_i'[V(s')],
        computed by `mtrec.reward.inference.expected_reward`, the function behind the
        pipeline's `reward_pos_expected` (METHOD.md section 6).

        s = (h, i); s' = (h + [i], i') with i' the runtime's fixed draw from the
        training log's display distribution (the observed next item is unknown at
        serving time). As in the pipeline's MDP (`mtrec.reward.mdp`), h is the last
        `max_history` positives of the Q-network and h + [i] keeps the last
        `max_history` of it.

        Pairs are evaluated together, in passes of at most REWARD_PAIRS_PER_PASS
        candidate items.
        """
        out: list[dict[str, Any]] = []
        start = 0
        while start < len(pairs):
            stop, size = start, 0
            while stop < len(pairs) and (
                stop == start or size + len(pairs[stop][1]) <= REWARD_PAIRS_PER_PASS
            ):
                size += len(pairs[stop][1])
                stop += 1
            out.extend(self._reward_pass(pairs[start:stop]))
            start = stop
        return out

    def _reward_pass(self, pairs: list[tuple[list[int], list[int]]]) -> list[dict[str, Any]]:
        """One read-out pass. lambda(s) comes from one backbone row per pair (all its
        candidates at once, right-padded to the longest history: the encoders are
        causal, padding after a state never changes it); the rest is one row per
        candidate, handed to `expected_reward`."""
        reward, network = self.reward, self.reward.network
        window = int(network.max_history)
        histories = [history[-window:] for history, _ in pairs]
        counts = [len(items) for _, items in pairs]
        most = max(counts)
        item_tensor = torch.tensor(
            [items + [0] * (most - len(items)) for _, items in pairs],
            dtype=torch.long,
            device=self.device,
        )  # [P, M]; padding candidates (0) are never read
        state = torch.tensor([[len(h)] * most for h in histories], device=self.device)
        now = network(self._history_batch(histories), item_tensor, state)  # [P, M, 2, N]

        # One row per candidate of every pair, [C, W]. W leaves room for h + [i]
        # unless h fills the window, where h + [i] drops its oldest item.
        pair_of = torch.tensor([n for n, c in enumerate(counts) for _ in range(c)])
        slot_of = torch.tensor([m for c in counts for m in range(c)])
        rows = [histories[n] for n in pair_of.tolist()]
        width = min(window, max(map(len, rows)) + 1)
        positives = torch.tensor(
            [h + [0] * (width - len(h)) for h in rows], dtype=torch.long, device=self.device
        )
        lengths = torch.tensor([len(h) for h in rows], device=self.device)
        pair_of, slot_of = pair_of.to(self.device), slot_of.to(self.device)
        click = expected_reward(
            network,
            positives,
            lengths,
            item_tensor[pair_of, slot_of],
            self._next_item_draw.expand(len(rows), -1),
            reward.gamma,
            reward.cvar_level,
            quantiles=now[pair_of, slot_of],
            actions=(1,),
        )
        n_quantiles = now.shape[-1]
        levels = [(2 * k - 1) / (2 * n_quantiles) for k in range(1, n_quantiles + 1)]
        quantiles = click["quantiles"][:, 0].cpu().split(counts)
        mean = click["mean"][:, 0].cpu().split(counts)
        cvar = click["cvar"][:, 0].cpu().split(counts)
        return [
            {"levels": levels, "quantiles": quantiles[n], "mean": mean[n], "cvar": cvar[n]}
            for n in range(len(pairs))
        ]
