"""An RL recommender trained in the simulator: REINFORCE with
`r_final = r_env + kappa * r_mental` (the paper's second use of the mental
reward model).

The policy is a softmax over the catalogue given the user's positive history
(mean of item embeddings, dot product with output item vectors). An episode
is one session of a training user (after the shared warm-up): one item per
step, sampled from the policy with clicked items masked; the user responds
and may leave, which ends the episode. `r_env` is the click (or the watch
ratio of a click). `r_mental` comes from a callable on the step's state,
item and response; `true_mental_reward` reads the simulator's realised
reward and is therefore an upper bound, not a learnable signal: a learned
reward model (the reward engineer's read-out r(s, a)) goes in its place.
Training users and the evaluation cohort are disjoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtrec.config import OnlineConfig, ReinforceConfig, SimulatorConfig
from mtrec.device import resolve_device
from mtrec.models import last_items
from mtrec.simulator.online import (
    cohort_users,
    compare,
    history_tensor,
    run_online,
    summarize,
    warm_up,
)
from mtrec.simulator.policies import ItemIndexMap
from mtrec.simulator.world import Draws, UserState, World, make_world, respond


@dataclass(frozen=True)
class StepBatch:
    """One step of a batch of episodes, as a mental reward model sees it."""

    history: torch.Tensor  # [B, L] right-padded item_idx before the step
    items: torch.Tensor  # [B] item_idx shown
    responses: torch.Tensor  # [B] 0/1
    # Ground truth, for the upper-bound reward only: realised reward (NaN if no click).
    true_reward: torch.Tensor  # [B]


MentalReward = Callable[[StepBatch], torch.Tensor]


def true_mental_reward(batch: StepBatch) -> torch.Tensor:
    """The simulator's realised reward of a click, 0 for a skip (upper bound)."""
    return torch.where(batch.responses > 0, torch.nan_to_num(batch.true_reward), 0.0)


class QNetworkMentalReward:
    """A learned mental reward (the reward engineer's Q-network) as r_mental.

    The network maps (positives [B, L], items [B, M], state_index [B, M]) to
    reward quantiles [B, M, 2, N]. For a click the reward is the advantage
    Q(s, 1) - Q(s, 0) (mean over quantiles); a skip gets 0, the same
    convention as `true_mental_reward`, so the two are interchangeable.
    `item_map` maps simulator items onto the network's item_idx (the
    processed items table it was trained on); unknown items get 0 reward.
    """

    def __init__(
        self, network: nn.Module, item_map: ItemIndexMap, shift: float = 0.0, scale: float = 1.0
    ):
        self.network = network.eval()
        self.item_map = item_map
        self.max_history = int(network.max_history)
        # Clicks get (advantage - shift) / scale: z-score with the statistics of
        # the training log's clicks (`click_batch`) so kappa means the same for
        # every reward model (METHOD.md section 3).
        self.shift = shift
        self.scale = scale
        self.device = next(network.parameters()).device

    @torch.no_grad()
    def __call__(self, batch: StepBatch) -> torch.Tensor:
        to_network = torch.as_tensor(
            np.concatenate([[0], self.item_map.to_policy]), dtype=torch.long
        )
        history = to_network[batch.history]  # simulator item_idx -> network item_idx (0 = unknown)
        # Unknown items leave holes; move the known ones to the front (right padding).
        order = torch.sort((history == 0).long(), dim=1, stable=True).indices
        history = last_items(torch.gather(history, 1, order), self.max_history)
        lengths = (history > 0).sum(dim=1)
        items = to_network[batch.items]
        quantiles = self.network(
            history.to(self.device),
            items[:, None].to(self.device),
            lengths[:, None].to(self.device),
        )[:, 0]  # [B, 2, N]
        q = quantiles.mean(dim=-1).float().cpu()
        reward = (q[:, 1] - q[:, 0] - self.shift) / self.scale
        known = items > 0
        return torch.where((batch.responses > 0) & known, reward, torch.zeros_like(reward))


def click_batch(frame: pd.DataFrame, max_history: int) -> StepBatch:
    """Every click of an exposure log (simulator item ids "1".."n") as a
    StepBatch: the positive history before it (simulator item_idx), the item,
    response 1 and its true reward. For the statistics of a mental reward."""
    histories, items, truth = [], [], []
    ordered = frame.sort_values(["user_id", "timestamp"], kind="stable")
    for _, events in ordered.groupby("user_id", sort=False):
        history: list[int] = []
        clicks = events[events["response"] == 1]
        for item, reward in zip(clicks["item_id"].astype(int), clicks["true_reward"], strict=True):
            recent = history[-max_history:]
            histories.append(recent + [0] * (max_history - len(recent)))
            items.append(item)
            truth.append(reward)
            history.append(item)
    return StepBatch(
        history=torch.as_tensor(histories, dtype=torch.long).view(-1, max_history),
        items=torch.as_tensor(items, dtype=torch.long),
        responses=torch.ones(len(items), dtype=torch.long),
        true_reward=torch.as_tensor(truth, dtype=torch.float32),
    )


class ReinforceRecommender(nn.Module):
    """history [B, L] (right-padded item_idx) -> logits over items [B, n_items + 1]."""

    def __init__(self, n_items: int, embedding_dim: int):
        super().__init__()
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, embedding_dim, padding_idx=0)
        self.output_embedding = nn.Embedding(n_items + 1, embedding_dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.empty_history = nn.Parameter(torch.zeros(embedding_dim))
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        nn.init.normal_(self.output_embedding.weight, std=0.1)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, D]: mean item embedding plus a learned offset."""
        counts = (history > 0).sum(dim=1, keepdim=True).clamp(min=1)
        return self.item_embedding(history).sum(dim=1) / counts + self.empty_history

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        logits = self.encode(history) @ self.output_embedding.weight.T + self.item_bias
        logits = logits.clone()
        logits[:, 0] = -torch.inf
        return logits


def train_reinforce(
    world: World,
    sim_config: SimulatorConfig,
    config: ReinforceConfig,
    online_config: OnlineConfig,
    kappa: float,
    mental_reward: MentalReward | None = None,
    seed: int | None = None,
) -> tuple[ReinforceRecommender, list[float]]:
    """Train on the users outside the online cohort; returns the model (on
    CPU, eval mode) and the mean episode return per iteration."""
    if kappa != 0 and mental_reward is None:
        raise ValueError("kappa != 0 needs a mental_reward callable")
    seed = config.seed if seed is None else seed
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 4])
    device = resolve_device("auto")
    train_users = np.setdiff1d(np.arange(world.n_users), cohort_users(world, online_config))
    if len(train_users) == 0:
        raise ValueError("no training users: the online cohort holds every user of the world")
    # Warm-up histories for the training users (same protocol as the cohort); the
    # warm-up covers every user so that its rows are world indices.
    warm_config = online_config.model_copy(
        update={"n_users": None, "first_user": 0, "seed": online_config.seed + 1000 + seed}
    )
    cohort = warm_up(world, sim_config, warm_config)
    identity = ItemIndexMap.identity(world.n_items)

    model = ReinforceRecommender(world.n_items, config.embedding_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    returns_log: list[float] = []
    steps = config.episode_length
    for _ in range(config.iterations):
        users = rng.choice(
            train_users, size=min(config.users_per_iteration, len(train_users)), replace=False
        )
        batch = len(users)
        state = UserState(interest=cohort.state.interest.copy())
        start = history_tensor(cohort.histories, users, identity, config.max_history)
        history = torch.cat([start, torch.zeros(batch, steps, dtype=torch.long)], dim=1)
        lengths = (start > 0).sum(dim=1)
        blocked = torch.zeros(batch, world.n_items + 1, dtype=torch.bool)
        blocked[:, 0] = True
        for row, user in enumerate(users):
            blocked[
                row, torch.as_tensor(np.flatnonzero(cohort.clicked[user]) + 1, dtype=torch.long)
            ] = True
        alive = torch.ones(batch, dtype=torch.bool)
        log_probs, entropies, rewards, alive_mask = [], [], [], []
        for _step in range(steps):
            logits = model.score_all(history.clone().to(device))
            logits = logits.masked_fill(blocked.clone().to(device), -torch.inf)
            log_policy = torch.log_softmax(logits, dim=1)
            # Gumbel-max sampling (torch.multinomial is far slower on CPU).
            gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(min=1e-12)))
            action = (logits.detach() + gumbel).argmax(dim=1)  # [B] item_idx
            draws = Draws.sample(rng, world.n_users, 1)
            items = action.cpu().numpy() - 1
            response = respond(world, sim_config, state, users, items[:, None], draws)
            click = torch.as_tensor(response.click[:, 0])
            if config.env_reward == "click":
                env = click.float()
            else:
                env = torch.as_tensor(
                    np.nan_to_num(response.watch_ratio[:, 0]), dtype=torch.float32
                )
            reward = env
            if kappa != 0:
                step_batch = StepBatch(
                    history=history.clone(),
                    items=action.cpu(),
                    responses=click.long(),
                    true_reward=torch.as_tensor(response.reward[:, 0], dtype=torch.float32),
                )
                reward = env + kappa * mental_reward(step_batch).float().cpu()
            log_probs.append(log_policy.gather(1, action[:, None])[:, 0])
            probs = log_policy.exp()
            entropies.append(-(probs * torch.nan_to_num(log_policy, neginf=0.0)).sum(dim=1))
            rewards.append(reward * alive)
            alive_mask.append(alive.clone())
            rows = torch.nonzero(click & alive).flatten()
            history[rows, lengths[rows].clamp(max=history.shape[1] - 1)] = action.cpu()[rows]
            lengths[rows] += 1
            blocked[rows, action.cpu()[rows]] = True
            alive &= ~torch.as_tensor(response.leave)
            if not alive.any():
                break
        rewards_t = torch.stack(rewards, dim=1)  # [B, T]
        returns = torch.zeros_like(rewards_t)
        running = torch.zeros(batch)
        for t in reversed(range(rewards_t.shape[1])):
            running = rewards_t[:, t] + config.discount * running
            returns[:, t] = running
        mask = torch.stack(alive_mask, dim=1).float()
        baseline = (returns * mask).sum(dim=0) / mask.sum(dim=0).clamp(min=1)
        advantage = ((returns - baseline) * mask).to(device)
        log_prob = torch.stack(log_probs, dim=1)
        entropy = (torch.stack(entropies, dim=1) * mask.to(device)).sum() / mask.sum()
        loss = -(log_prob * advantage).sum() / mask.sum() - config.entropy_weight * entropy
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        returns_log.append(float(rewards_t.sum(dim=1).mean()))
    return model.cpu().eval(), returns_log


def rl_experiment(
    sim_config: SimulatorConfig,
    config: ReinforceConfig,
    online_config: OnlineConfig,
    seeds: list[int],
    mental_rewards: dict[str, MentalReward] | None = None,
    out_path: str | Path | None = None,
) -> dict:
    """r_env alone ("env") vs r_env + kappa * r_mental ("env+<name>") for each
    mental reward given (default: {"true": true_mental_reward}, the upper
    bound), per seed, evaluated online on the same cohort. Reports each
    variant's metrics as mean and std over seeds, and per seed the paired
    comparison of every guided variant with "env" (`versus`)."""
    mental_rewards = mental_rewards or {"true": true_mental_reward}
    world = make_world(sim_config)
    variants: list[tuple[str, float, MentalReward | None]] = [("env", 0.0, None)]
    variants += [(f"env+{name}", config.kappa, reward) for name, reward in mental_rewards.items()]
    per_seed = []
    for seed in seeds:
        results = {}
        for name, kappa, reward in variants:
            model, _ = train_reinforce(
                world, sim_config, config, online_config, kappa, reward, seed
            )
            results[name] = run_online(_NoGrad(model), world, sim_config, online_config, name=name)
        entry: dict = {"seed": seed}
        entry.update({name: summarize(result, online_config) for name, result in results.items()})
        entry["versus"] = {
            name: compare(results["env"], result, online_config)
            for name, result in results.items()
            if name != "env"
        }
        per_seed.append(entry)
    report: dict = {
        "kappa": config.kappa,
        "env_reward": config.env_reward,
        "seeds": seeds,
        "variants": [name for name, _, _ in variants],
        "per_seed": per_seed,
    }
    for name, _, _ in variants:
        means = {
            metric: [s[name][metric]["mean"] for s in per_seed] for metric in per_seed[0][name]
        }
        report[name] = {
            metric: {
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            }
            for metric, values in means.items()
        }
    if out_path is not None:
        path = Path(out_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
    return report


class _NoGrad:
    def __init__(self, model: ReinforceRecommender):
        self.model = model

    @torch.no_grad()
    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        return self.model.score_all(history)
