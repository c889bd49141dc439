"""Responsiveness (Wang et al., RecSys 2023), measured counterfactually.

For each user state h of a cohort, let i be the policy's top item for h.
Two counterfactual futures of the same state: the user takes a positive
action on i, or a negative one. The policy then recommends its next top-k;
we measure the share of that top-k in i's main topic (i itself and the
history masked in both). Responsiveness = share after positive - share after
negative: how much the policy moves away from the topic of an item the user
rejected, relative to one the user liked. 0 means it ignores the feedback.

Policies that only see positive histories (`score_all(history)`, every
policy of this package and the `mtrec.models` backbones) get the negative
action as "i is not appended to the history"; the positive action appends i.
Such a policy can react only through the positive history, so its
responsiveness measures how strongly a single positive pulls recommendations
toward a topic; a policy with a negative channel would be given the negative
explicitly and could go below the no-feedback share.
"""

from __future__ import annotations

import numpy as np
import torch

from mtrec.config import OnlineConfig, SimulatorConfig
from mtrec.simulator.online import history_tensor, warm_up
from mtrec.simulator.policies import ItemIndexMap, Policy
from mtrec.simulator.world import World


def _masked_top_k(scores: torch.Tensor, masked: torch.Tensor, k: int) -> torch.Tensor:
    scores = scores.clone().float()
    scores[masked] = -torch.inf
    scores[:, 0] = -torch.inf
    return scores.topk(k, dim=1).indices


def responsiveness(
    policy: Policy,
    history: torch.Tensor,
    world: World,
    item_map: ItemIndexMap,
    top_k: int = 10,
) -> dict[str, float]:
    """history: right-padded [B, L] item_idx in the policy's indexing (at
    least one free slot is added for the appended item)."""
    n_rows = history.shape[0]
    topic_of = torch.as_tensor(
        item_map.per_policy_item(world.item_primary_topic.astype(float), fill=-1.0)
    ).long()  # [n_policy + 1]
    history_mask = torch.zeros(n_rows, item_map.n_policy_items + 1, dtype=torch.bool)
    history_mask.scatter_(1, history, True)

    scores = policy.score_all(history).detach().cpu()
    chosen = _masked_top_k(scores, history_mask, 1)[:, 0]  # [B]

    lengths = (history > 0).sum(dim=1)
    positive = torch.cat([history, torch.zeros(n_rows, 1, dtype=torch.long)], dim=1)
    positive[torch.arange(n_rows), lengths] = chosen
    masked = history_mask.clone()
    masked[torch.arange(n_rows), chosen] = True

    after_positive = _masked_top_k(policy.score_all(positive).detach().cpu(), masked, top_k)
    after_negative = _masked_top_k(scores, masked, top_k)
    chosen_topic = topic_of[chosen][:, None]
    share_positive = (topic_of[after_positive] == chosen_topic).float().mean(dim=1)
    share_negative = (topic_of[after_negative] == chosen_topic).float().mean(dim=1)
    difference = (share_positive - share_negative).numpy()
    return {
        "responsiveness": float(difference.mean()),
        "responsiveness_std_error": float(difference.std(ddof=1) / np.sqrt(len(difference)))
        if len(difference) > 1
        else float("nan"),
        "topic_share_after_positive": float(share_positive.mean()),
        "topic_share_after_negative": float(share_negative.mean()),
        "n_users": n_rows,
        "top_k": top_k,
    }


def cohort_responsiveness(
    policy: Policy,
    world: World,
    sim_config: SimulatorConfig,
    config: OnlineConfig,
    item_map: ItemIndexMap | None = None,
    top_k: int = 10,
) -> dict[str, float]:
    """Responsiveness over the online cohort's states after warm-up (the same
    states for every policy evaluated with the same seed)."""
    item_map = item_map or ItemIndexMap.identity(world.n_items)
    cohort = warm_up(world, sim_config, config)
    rows = np.arange(len(cohort.users))
    history = history_tensor(cohort.histories, rows, item_map, config.max_history, "right")
    return responsiveness(policy, history, world, item_map, top_k)
