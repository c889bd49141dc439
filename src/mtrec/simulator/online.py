"""Online evaluation: a policy in the loop with simulated users.

Every user of the cohort first gets a warm-up under the logging policy (the
same for every policy evaluated with the same seed), which gives them a
positive history. Then, for each session, the policy's top-k of the
catalogue (the user's clicked items and this session's shown items masked) is
shown at every step; the user clicks, is satisfied or disappointed, maybe
leaves. The random numbers of user u at (session, step) come from a generator
seeded by (seed, session, step) and are drawn for every user, so two policies
face the same users with the same luck (common random numbers) and their
difference is measured paired, user by user.

Metrics per user (averaged over their sessions, then over users):
- `viewing_time`: watch ratio summed over a session's clicks (in item lengths);
- `session_length`: slates viewed before leaving (or the session cap);
- `ctr`: clicks / shown items;
- `reward_per_shown`: mean true reward of the shown items, i.e. the reward the
  user would get by clicking (noise-free mean, at the user's current interest);
- `reward_per_click`: mean realised true reward of the clicks;
- `negative_click_share`: share of clicks with a negative realised reward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from mtrec.config import OnlineConfig, SimulatorConfig
from mtrec.simulator.logging_policy import LoggingPolicy
from mtrec.simulator.policies import ItemIndexMap, Policy, UserStateOracle
from mtrec.simulator.world import Draws, UserState, World, respond

METRICS = (
    "viewing_time",
    "session_length",
    "ctr",
    "reward_per_shown",
    "reward_per_click",
    "negative_click_share",
)


@dataclass
class Cohort:
    """Simulated users with their evolving interest and positive histories
    (simulator item indices, oldest first)."""

    users: np.ndarray  # [n] world user indices
    state: UserState
    histories: list[list[int]]
    clicked: np.ndarray  # [n, n_items] bool


def cohort_users(world: World, config: OnlineConfig) -> np.ndarray:
    """World indices of the cohort: `n_users` users from `first_user` on."""
    if config.first_user >= world.n_users:
        raise ValueError(
            f"online.first_user {config.first_user} is outside the world's {world.n_users} users"
        )
    last = world.n_users if config.n_users is None else config.first_user + config.n_users
    return np.arange(config.first_user, min(last, world.n_users))


def warm_up(world: World, sim_config: SimulatorConfig, config: OnlineConfig) -> Cohort:
    """Exposures under the logging policy; users do not leave during warm-up."""
    users = cohort_users(world, config)
    n_users = len(users)
    rng = np.random.default_rng([config.seed, 0])
    logging_policy = LoggingPolicy.from_config(world, sim_config, rng)
    state = UserState.initial(world)
    # The logging policy reads its blocked items by world index.
    clicked = np.zeros((int(users[-1]) + 1, world.n_items), dtype=bool)
    histories: list[list[int]] = [[] for _ in range(n_users)]
    for _ in range(config.warmup_exposures):
        draws = Draws.sample(rng, world.n_users, 1)
        items = logging_policy.sample(users, rng, clicked)
        response = respond(world, sim_config, state, users, items[:, None], draws)
        for row in np.flatnonzero(response.click[:, 0]):
            histories[row].append(int(items[row]))
            clicked[users[row], items[row]] = True
    state.recover(world, sim_config.interest_recovery)
    return Cohort(users=users, state=state, histories=histories, clicked=clicked[users])


def history_tensor(
    histories: list[list[int]],
    rows: np.ndarray,
    item_map: ItemIndexMap,
    max_history: int,
    padding: str = "right",
) -> torch.Tensor:
    """Positive histories of `rows` in the policy's item_idx, [B, L], 0-padded.
    Items the policy does not know are left out."""
    mapped = [[int(item_map.to_policy[i]) for i in histories[r]] for r in rows]
    mapped = [[i for i in seq if i > 0][-max_history:] for seq in mapped]
    width = max(1, max((len(seq) for seq in mapped), default=1))
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for row, seq in enumerate(mapped):
        if not seq:
            continue
        values = torch.as_tensor(seq, dtype=torch.long)
        if padding == "right":
            out[row, : len(seq)] = values
        else:
            out[row, width - len(seq) :] = values
    return out


def world_scores(policy: Policy, history: torch.Tensor, item_map: ItemIndexMap) -> np.ndarray:
    """The policy's scores over the simulator's items [B, n_world_items]."""
    scores = policy.score_all(history).detach().float().cpu().numpy()
    expected = item_map.n_policy_items + 1
    if scores.shape != (history.shape[0], expected):
        raise ValueError(f"policy returned scores {scores.shape}, expected (B, {expected})")
    out = scores[:, item_map.to_policy]
    out[:, item_map.to_policy == 0] = -np.inf
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


@dataclass(frozen=True)
class OnlineResult:
    name: str
    sessions: pd.DataFrame  # one row per (user, session): sums and counts

    def per_user(self) -> pd.DataFrame:
        """User-level metrics (index: user), the unit of every comparison."""
        by_user = self.sessions.groupby("user")
        sums = by_user[
            ["shown", "clicks", "reward_shown_sum", "reward_click_sum", "negative_clicks"]
        ].sum()
        out = pd.DataFrame(
            {
                "viewing_time": by_user["viewing_time"].mean(),
                "session_length": by_user["length"].mean(),
                "ctr": sums["clicks"] / sums["shown"].where(sums["shown"] > 0),
                "reward_per_shown": sums["reward_shown_sum"]
                / sums["shown"].where(sums["shown"] > 0),
                "reward_per_click": sums["reward_click_sum"]
                / sums["clicks"].where(sums["clicks"] > 0),
                "negative_click_share": sums["negative_clicks"]
                / sums["clicks"].where(sums["clicks"] > 0),
            }
        )
        return out


def run_online(
    policy: Policy | UserStateOracle,
    world: World,
    sim_config: SimulatorConfig,
    config: OnlineConfig,
    item_map: ItemIndexMap | None = None,
    name: str = "policy",
) -> OnlineResult:
    item_map = item_map or ItemIndexMap.identity(world.n_items)
    cohort = warm_up(world, sim_config, config)
    n_users = len(cohort.users)
    k = config.slate_size
    records = []
    for session in range(config.sessions_per_user):
        active = np.ones(n_users, dtype=bool)
        shown_before = np.zeros((n_users, world.n_items), dtype=bool)
        totals = {
            key: np.zeros(n_users)
            for key in (
                "viewing_time",
                "length",
                "shown",
                "clicks",
                "reward_shown_sum",
                "reward_click_sum",
                "negative_clicks",
            )
        }
        for step in range(config.max_session_length):
            rows = np.flatnonzero(active)
            if len(rows) == 0:
                break
            # Read by world index: drawn for users 0 .. the cohort's last one.
            rng = np.random.default_rng([config.seed, 1, session, step])
            draws = Draws.sample(rng, int(cohort.users[-1]) + 1, k)
            history = history_tensor(
                cohort.histories, rows, item_map, config.max_history, config.history_padding
            )
            if isinstance(policy, UserStateOracle):
                served = cohort.users[rows]
                scores = policy.world_scores(cohort.state.interest[served], served).astype(float)
            else:
                scores = world_scores(policy, history, item_map)
            scores[cohort.clicked[rows] | shown_before[rows]] = -np.inf
            slate = top_k(scores, k)  # [B, k]
            valid = np.isfinite(np.take_along_axis(scores, slate, axis=1))
            response = respond(world, sim_config, cohort.state, cohort.users[rows], slate, draws)
            click = response.click & valid
            reward = np.where(click, response.reward, 0.0)
            shown_before[rows[:, None], slate] = True
            totals["viewing_time"][rows] += np.where(click, response.watch_ratio, 0.0).sum(axis=1)
            totals["length"][rows] += 1
            totals["shown"][rows] += valid.sum(axis=1)
            totals["clicks"][rows] += click.sum(axis=1)
            totals["reward_shown_sum"][rows] += np.where(valid, response.expected_reward, 0.0).sum(
                axis=1
            )
            totals["reward_click_sum"][rows] += reward.sum(axis=1)
            totals["negative_clicks"][rows] += (click & (reward < 0)).sum(axis=1)
            for row_pos, row in enumerate(rows):
                for item in slate[row_pos][click[row_pos]]:
                    cohort.histories[row].append(int(item))
                    cohort.clicked[row, item] = True
            active[rows[response.leave]] = False
        cohort.state.recover(world, sim_config.interest_recovery)
        records.append(pd.DataFrame({"user": cohort.users, "session": session, **totals}))
    return OnlineResult(name=name, sessions=pd.concat(records, ignore_index=True))


def _bootstrap_ci(
    values: np.ndarray, confidence: float, n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float]:
    if len(values) < 2:
        return (float("nan"), float("nan"))
    resampled = rng.choice(values, size=(n_bootstrap, len(values)), replace=True).mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(result: OnlineResult, config: OnlineConfig) -> dict[str, dict[str, float]]:
    """Mean of each metric over users with a bootstrap confidence interval."""
    per_user = result.per_user()
    rng = np.random.default_rng([config.seed, 2])
    out = {}
    for metric in METRICS:
        values = per_user[metric].dropna().to_numpy()
        low, high = _bootstrap_ci(values, config.confidence, config.n_bootstrap, rng)
        out[metric] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "ci_low": low,
            "ci_high": high,
            "n_users": len(values),
        }
    return out


def compare(
    base: OnlineResult, guided: OnlineResult, config: OnlineConfig
) -> dict[str, dict[str, float]]:
    """Paired difference guided - base per metric over the same users: mean,
    bootstrap CI, paired t-test p-value and relative change."""
    base_users, guided_users = base.per_user(), guided.per_user()
    rng = np.random.default_rng([config.seed, 3])
    out = {}
    for metric in METRICS:
        paired = pd.concat(
            [base_users[metric], guided_users[metric]], axis=1, keys=["base", "guided"]
        )
        paired = paired.dropna()
        diff = (paired["guided"] - paired["base"]).to_numpy()
        low, high = _bootstrap_ci(diff, config.confidence, config.n_bootstrap, rng)
        base_mean = float(paired["base"].mean())
        p_value = (
            float(stats.ttest_rel(paired["guided"], paired["base"]).pvalue)
            if len(diff) > 1
            else float("nan")
        )
        out[metric] = {
            "base": base_mean,
            "guided": float(paired["guided"].mean()),
            "difference": float(diff.mean()) if len(diff) else float("nan"),
            "relative_change": float(diff.mean() / abs(base_mean)) if base_mean else float("nan"),
            "ci_low": low,
            "ci_high": high,
            "p_value": p_value,
            "n_users": len(diff),
        }
    return out


def evaluate_policies(
    policies: dict[str, tuple[Policy, ItemIndexMap | None]],
    world: World,
    sim_config: SimulatorConfig,
    config: OnlineConfig,
    baseline: str,
    out_path: str | Path | None = None,
) -> dict:
    """Run every policy on the same cohort; summarise each and compare each
    with `baseline`, paired. Writes JSON to `out_path` when given."""
    if baseline not in policies:
        raise KeyError(f"baseline {baseline!r} is not among the policies {sorted(policies)}")
    results = {
        name: run_online(policy, world, sim_config, config, item_map, name)
        for name, (policy, item_map) in policies.items()
    }
    report = {
        "config": config.model_dump(),
        "baseline": baseline,
        "policies": {name: summarize(result, config) for name, result in results.items()},
        "versus_baseline": {
            name: compare(results[baseline], result, config)
            for name, result in results.items()
            if name != baseline
        },
    }
    if out_path is not None:
        path = Path(out_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
    return report
