"""The logging policy and the exposure log it produces.

The logging system shows one item per step, drawn from a mixture of its
popularity prior, a uniform draw and a preference-aware draw (softmax of the
fit it estimates from a noisy copy of the user's interest). Items the user
already clicked are not shown again. Users answer through `world.respond`.

Log columns (the canonical exposure schema): `user_id`, `item_id` (str),
`timestamp` (int64 seconds), `response` (0/1), `watch_ratio` and `true_reward`.
`true_reward` is the realised mental reward of a click and NaN for exposures
that were not clicked: a non-click has no realised reward, and the contract
keeps NaN for "unknown". The expected reward of any exposure can be rebuilt
from the ground truth (`world.expected_reward`, with the base interest).
`watch_ratio` is likewise NaN for non-clicks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mtrec.config import SimulatorConfig
from mtrec.simulator.world import Draws, UserState, World, make_world, respond

SECONDS_PER_STEP = 60
SECONDS_PER_SESSION = 86_400
START_TIME = 1_600_000_000
# Largest n_users * n_items whose preference CDF is cached (float32: 4 bytes each).
CDF_CACHE_LIMIT = 60_000_000
# Users simulated together: at most this many users * items, so a block's click
# matrix and cached CDF stay bounded however large the world (users never interact,
# so blocks are independent). A world within it is one block: the log of every
# world that fits is what it was before blocks existed.
BLOCK_CELLS = 60_000_000


@dataclass(frozen=True)
class LoggingPolicy:
    """Mixture of popularity, uniform and preference-aware exposure."""

    world: World
    weights: np.ndarray  # [3]: popularity, random, preference; sums to 1
    estimated_interest: np.ndarray  # [n_users, n_topics]: the system's noisy view
    temperature: float
    # [n_users, n_items] float32 cumulative preference distribution, rows ending
    # at 1; None for worlds too large to cache (computed per draw instead).
    preference_cdf: np.ndarray | None = None

    @classmethod
    def from_config(
        cls, world: World, config: SimulatorConfig, rng: np.random.Generator
    ) -> LoggingPolicy:
        weights = np.array(
            [
                config.logging_popularity_weight,
                config.logging_random_weight,
                config.logging_preference_weight,
            ]
        )
        if weights.sum() <= 0:
            raise ValueError("logging policy weights must not all be zero")
        noise = config.logging_preference_noise * rng.standard_normal(world.user_preferences.shape)
        estimated = world.user_preferences + noise
        temperature = config.logging_preference_temperature
        cdf = None
        if world.n_users * world.n_items <= CDF_CACHE_LIMIT:
            cdf = np.empty((world.n_users, world.n_items), dtype=np.float32)
            chunk = max(1, 4_000_000 // world.n_items)
            for start in range(0, world.n_users, chunk):
                rows = slice(start, start + chunk)
                cumulative = _preference_cdf(estimated[rows], world.item_topics, temperature)
                cdf[rows] = cumulative / cumulative[:, -1:]
        return cls(
            world=world,
            weights=weights / weights.sum(),
            estimated_interest=estimated,
            temperature=temperature,
            preference_cdf=cdf,
        )

    def sample(
        self, users: np.ndarray, rng: np.random.Generator, blocked: np.ndarray
    ) -> np.ndarray:
        """One item per user [B]; `blocked` [n_users, n_items] marks items not to show."""
        items = self._draw(users, rng)
        for attempt in range(8):
            again = blocked[users, items]
            if not again.any():
                return items
            if attempt < 7:
                items[again] = self._draw(users[again], rng)
        # Rare leftovers (a user who clicked most of what the policy favours):
        # uniform over what is still allowed.
        for row in np.flatnonzero(blocked[users, items]):
            allowed = np.flatnonzero(~blocked[users[row]])
            items[row] = rng.choice(allowed) if len(allowed) else items[row]
        return items

    def _draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_items = self.world.n_items
        component = rng.choice(3, size=len(users), p=self.weights)
        items = np.empty(len(users), dtype=np.int64)
        popular = component == 0
        items[popular] = rng.choice(
            n_items, size=int(popular.sum()), p=self.world.item_exposure_prior
        )
        uniform = component == 1
        items[uniform] = rng.integers(0, n_items, size=int(uniform.sum()))
        preferred = np.flatnonzero(component == 2)
        # Chunks bound the [chunk, n_items] matrix for large catalogues.
        chunk = max(1, 4_000_000 // n_items)
        for start in range(0, len(preferred), chunk):
            rows = preferred[start : start + chunk]
            if self.preference_cdf is not None:
                cdf = self.preference_cdf[users[rows]]
            else:
                cdf = _preference_cdf(
                    self.estimated_interest[users[rows]], self.world.item_topics, self.temperature
                )
            threshold = rng.random(len(rows)) * cdf[:, -1]
            items[rows] = np.minimum((cdf < threshold[:, None]).sum(axis=1), n_items - 1)
        return items


def _preference_cdf(
    interest: np.ndarray, item_topics: np.ndarray, temperature: float
) -> np.ndarray:
    """Unnormalised cumulative softmax(interest . topics / temperature) [B, n_items]."""
    logits = interest @ item_topics.T / temperature
    return np.cumsum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)


@dataclass(frozen=True)
class SimulatedLog:
    frame: pd.DataFrame
    world: World


def generate_log(config: SimulatorConfig) -> SimulatedLog:
    """Simulate every user's sessions under the logging policy (seeded).

    Users are simulated in blocks of at most BLOCK_CELLS // n_items users, each
    with its own random stream (the whole world is one block, with the stream
    `[seed, 1]`, when it fits), so memory is bounded by the block, not the world."""
    world = make_world(config)
    block_users = max(1, BLOCK_CELLS // world.n_items)
    starts = range(0, world.n_users, block_users)
    parts = []
    for block, start in enumerate(starts):
        users = slice(start, min(start + block_users, world.n_users))
        seed = [config.seed, 1] if len(starts) == 1 else [config.seed, 1, block]
        view = replace(
            world,
            user_preferences=world.user_preferences[users],
            user_susceptibility=world.user_susceptibility[users],
        )
        part = _simulate_block(view, config, np.random.default_rng(seed))
        part["user"] += start
        parts.append(part)
    data = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    order = np.lexsort((data["timestamp"], data["user"]))
    frame = pd.DataFrame(
        {
            "user_id": world.user_ids[data["user"][order]],
            "item_id": world.item_ids[data["item"][order]],
            "timestamp": data["timestamp"][order].astype(np.int64),
            "response": data["response"][order],
            "watch_ratio": data["watch_ratio"][order].astype(float),
            "true_reward": data["true_reward"][order].astype(float),
        }
    )
    return SimulatedLog(frame=frame, world=world)


def _simulate_block(
    world: World, config: SimulatorConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Every session of the users of `world` (a block's view: user index 0 is the
    block's first user); columns of the log, users in block indices."""
    policy = LoggingPolicy.from_config(world, config, rng)
    state = UserState.initial(world)
    clicked = np.zeros((world.n_users, world.n_items), dtype=bool)
    user_offset = rng.integers(0, SECONDS_PER_SESSION // 2, size=world.n_users)

    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("user", "item", "timestamp", "response", "watch_ratio", "true_reward")
    }
    for session in range(config.sessions_per_user):
        active = np.ones(world.n_users, dtype=bool)
        for step in range(config.max_session_length):
            users = np.flatnonzero(active)
            if len(users) == 0:
                break
            draws = Draws.sample(rng, world.n_users, 1)
            items = policy.sample(users, rng, clicked)
            response = respond(world, config, state, users, items[:, None], draws)
            click = response.click[:, 0]
            clicked[users[click], items[click]] = True
            columns["user"].append(users)
            columns["item"].append(items)
            columns["timestamp"].append(
                START_TIME
                + user_offset[users]
                + session * SECONDS_PER_SESSION
                + step * SECONDS_PER_STEP
            )
            columns["response"].append(click.astype(np.int64))
            columns["watch_ratio"].append(response.watch_ratio[:, 0])
            columns["true_reward"].append(response.reward[:, 0])
            active[users[response.leave]] = False
        state.recover(world, config.interest_recovery)
    return {k: np.concatenate(v) for k, v in columns.items()}


def log_statistics(frame: pd.DataFrame, min_item_exposures: int = 10) -> dict[str, float]:
    """Summary of a simulated log: size, CTR, share of disappointing clicks and
    whether an item's CTR says anything about its mean true reward (Spearman
    over items with at least `min_item_exposures` exposures)."""
    from scipy.stats import spearmanr

    clicks = frame[frame["response"] == 1]
    per_item = frame.groupby("item_id").agg(
        exposures=("response", "size"), ctr=("response", "mean"), reward=("true_reward", "mean")
    )
    per_item = per_item[per_item["exposures"] >= min_item_exposures].dropna()
    per_user_clicks = clicks.groupby("user_id").size()
    return {
        "rows": int(len(frame)),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
        "clicks": int(len(clicks)),
        "ctr": float(frame["response"].mean()),
        "negative_reward_click_share": float((clicks["true_reward"] < 0).mean()),
        "mean_true_reward_per_click": float(clicks["true_reward"].mean()),
        "clicks_per_user_median": float(per_user_clicks.median()),
        "users_with_3_clicks_or_more": int((per_user_clicks >= 3).sum()),
        "spearman_item_ctr_vs_mean_true_reward": float(
            spearmanr(per_item["ctr"], per_item["reward"]).statistic
        ),
        "items_in_spearman": int(len(per_item)),
    }
