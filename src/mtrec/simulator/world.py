"""The simulated world: items, users and how a user responds to what is shown.

Ground truth (never visible to a recommender): every item has a topic mixture,
a true quality, a clickbait attractiveness drawn independently of the quality
and its own noise scale (some items are risky); every user has a base interest
per topic and a susceptibility to clickbait.

Response to an exposure of item i to user u (interest x_u, which evolves):

    fit        = x_u . topics_i
    P(click)   = sigmoid(click_bias + w_fit*fit + w_bait*susceptibility_u*clickbait_i)
    reward     = reward_bias + v_fit*fit + v_quality*quality_i + noise_i * eps   (after a click)
    watch      = 2*sigmoid(slope*reward + watch_noise*eps')                      (after a click)

Clickbait drives clicks but not the reward, so the items users click most are
not the ones that satisfy them. After a click with negative reward the user is
more likely to leave and loses interest in the item's topics.

Everything is vectorised over users with numpy; randomness comes from
`numpy.random.Generator`s passed in by the caller, so every run is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mtrec.config import SimulatorConfig


@dataclass(frozen=True)
class World:
    """The hidden ground truth. Item k has id str(k + 1), user u has id str(u + 1)."""

    item_topics: np.ndarray  # [n_items, n_topics], rows sum to 1
    item_quality: np.ndarray  # [n_items]
    item_clickbait: np.ndarray  # [n_items], independent of quality
    item_noise_scale: np.ndarray  # [n_items], std of the reward around its mean
    item_exposure_prior: np.ndarray  # [n_items], popularity of the logging system, sums to 1
    user_preferences: np.ndarray  # [n_users, n_topics], base interest
    user_susceptibility: np.ndarray  # [n_users], > 0

    @property
    def n_items(self) -> int:
        return self.item_topics.shape[0]

    @property
    def n_users(self) -> int:
        return self.user_preferences.shape[0]

    @property
    def item_primary_topic(self) -> np.ndarray:
        return self.item_topics.argmax(axis=1)

    @property
    def item_ids(self) -> np.ndarray:
        return np.array([str(k + 1) for k in range(self.n_items)], dtype=object)

    @property
    def user_ids(self) -> np.ndarray:
        return np.array([str(u + 1) for u in range(self.n_users)], dtype=object)


def make_world(config: SimulatorConfig) -> World:
    """Draw the ground truth; a pure function of the config (seed included)."""
    rng = np.random.default_rng([config.seed, 0])
    n_items, n_topics = config.n_items, config.n_topics
    item_topics = rng.dirichlet(np.full(n_topics, config.topic_concentration), size=n_items)
    item_quality = rng.standard_normal(n_items)
    item_clickbait = rng.standard_normal(n_items)
    risky = rng.random(n_items) < config.risky_fraction
    item_noise_scale = np.where(risky, config.risky_noise_scale, config.noise_scale)
    # The logging system's popularity is a Zipf law over a random item order,
    # unrelated to quality and clickbait (real popularity grows from clicks; the
    # log will show that through the click counts).
    ranks = rng.permutation(n_items) + 1.0
    prior = ranks ** (-config.popularity_skew)
    user_preferences = config.preference_scale * rng.standard_normal((config.n_users, n_topics))
    user_susceptibility = np.exp(config.susceptibility_spread * rng.standard_normal(config.n_users))
    return World(
        item_topics=item_topics,
        item_quality=item_quality,
        item_clickbait=item_clickbait,
        item_noise_scale=item_noise_scale.astype(float),
        item_exposure_prior=prior / prior.sum(),
        user_preferences=user_preferences,
        user_susceptibility=user_susceptibility,
    )


def save_world(world: World, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f.name: getattr(world, f.name) for f in fields(world)}
    arrays["item_id"] = world.item_ids.astype(str)
    arrays["user_id"] = world.user_ids.astype(str)
    arrays["item_primary_topic"] = world.item_primary_topic
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_world(path: str | Path) -> World:
    with np.load(Path(path), allow_pickle=False) as data:
        return World(**{f.name: data[f.name] for f in fields(World)})


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class UserState:
    """What changes while users interact: their interest per topic."""

    interest: np.ndarray  # [n_users, n_topics]

    @classmethod
    def initial(cls, world: World) -> UserState:
        return cls(interest=world.user_preferences.copy())

    def recover(self, world: World, recovery: float) -> None:
        """Between sessions the drift decays back toward the base interest."""
        self.interest = world.user_preferences + (1.0 - recovery) * (
            self.interest - world.user_preferences
        )


@dataclass(frozen=True)
class Draws:
    """The random numbers one step consumes, drawn for ALL users so that two
    policies evaluated with the same seed see the same numbers (common random
    numbers), whatever items they show."""

    click: np.ndarray  # [n_users, k] uniform
    reward: np.ndarray  # [n_users, k] standard normal
    watch: np.ndarray  # [n_users, k] standard normal
    leave: np.ndarray  # [n_users] uniform

    @classmethod
    def sample(cls, rng: np.random.Generator, n_users: int, slate_size: int) -> Draws:
        return cls(
            click=rng.random((n_users, slate_size)),
            reward=rng.standard_normal((n_users, slate_size)),
            watch=rng.standard_normal((n_users, slate_size)),
            leave=rng.random(n_users),
        )


@dataclass(frozen=True)
class Response:
    click: np.ndarray  # [B, k] bool
    reward: np.ndarray  # [B, k] realised mental reward (NaN where not clicked)
    expected_reward: np.ndarray  # [B, k] mean reward had the user clicked
    watch_ratio: np.ndarray  # [B, k] (NaN where not clicked)
    leave: np.ndarray  # [B] bool


def preference_fit(world: World, interest: np.ndarray, items: np.ndarray) -> np.ndarray:
    """interest [B, T], items [B, k] -> fit [B, k]."""
    return np.einsum("bt,bkt->bk", interest, world.item_topics[items])


def click_probability(
    world: World, config: SimulatorConfig, state: UserState, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    fit = preference_fit(world, state.interest[users], items)
    bait = world.user_susceptibility[users, None] * world.item_clickbait[items]
    return sigmoid(
        config.click_bias + config.click_fit_weight * fit + config.click_bait_weight * bait
    )


def expected_reward(
    world: World, config: SimulatorConfig, interest: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """Mean mental reward of a click: interest [B, T], items [B, k] -> [B, k]."""
    fit = preference_fit(world, interest, items)
    return (
        config.reward_bias
        + config.reward_fit_weight * fit
        + config.reward_quality_weight * world.item_quality[items]
    )


def respond(
    world: World,
    config: SimulatorConfig,
    state: UserState,
    users: np.ndarray,
    items: np.ndarray,
    draws: Draws,
) -> Response:
    """Users [B] see slates items [B, k]; returns their response and updates
    `state` in place (disappointment lowers interest in the item's topics)."""
    prob = click_probability(world, config, state, users, items)
    click = draws.click[users] < prob
    mean = expected_reward(world, config, state.interest[users], items)
    realised = mean + world.item_noise_scale[items] * draws.reward[users]
    watch = 2.0 * sigmoid(
        config.watch_ratio_slope * realised + config.watch_ratio_noise * draws.watch[users]
    )
    reward = np.where(click, realised, np.nan)
    watch = np.where(click, watch, np.nan)

    clicked_reward = np.where(click, realised, 0.0)
    disappointment = np.maximum(-clicked_reward, 0.0)  # [B, k]
    delight = np.maximum(clicked_reward, 0.0)
    topic_shift = np.einsum(
        "bk,bkt->bt",
        config.interest_drift_positive * delight - config.interest_drift_negative * disappointment,
        world.item_topics[items],
    )
    state.interest[users] += topic_shift
    leave_prob = np.clip(
        config.base_leave_probability + config.disappointment_leave * disappointment.sum(axis=1),
        0.0,
        1.0,
    )
    leave = draws.leave[users] < leave_prob
    return Response(
        click=click, reward=reward, expected_reward=mean, watch_ratio=watch, leave=leave
    )
