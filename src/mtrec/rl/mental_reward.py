"""The mental reward on VirtualTaobao: the virtual user's MDP, QR-IQL, the read-out,
and the `r_env + kappa * r_mental` reward wrapper (docs/virtual_taobao.md).

The user-centric MDP (the user is the agent, the recommender is its environment):
- state s_t = (user features u [88], page index t, clicks on the last page
  c_{t-1}, the page shown now, i.e. the recommender's 27-d weight vector w_t).
  The page plays the part of the shown item i_t of METHOD.md section 1;
- action a_t = (c_t clicks on this page in 0..10, leave_t in {0, 1}): 22 actions,
  index c + 11 * leave. Leaving is the user's own action: it ends the session
  (V(s') = 0), as METHOD.md section 6 suggests trying;
- transition: s_{t+1} = (u, t + 1, c_t, w_{t+1}) with the next page w_{t+1} from
  the recommender.

QR-IQL is the project's objective, unchanged (`mtrec.reward.losses.qr_iql_loss`);
only the encoder differs: an MLP over the state's feature vector instead of a
sequence backbone (the state here is a feature vector, not an item history).

Read-out (METHOD.md section 2, "expected-next"): for the taken user action a,

    r(s, a) = Q(s, a) - gamma * E_{w'}[ V(u, t + 1, c(a), w') ]    (0 after leaving)

with w' drawn from the behaviour log's pages: a function of (s, a) alone, so it
neither peeks at the recommender's next page nor rewards leaving. It is
z-scored with the mean and std over the behaviour log's train transitions.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mtrec.config import RewardConfig
from mtrec.reward.inference import cvar_of_quantiles, non_crossing, q_values, soft_value
from mtrec.reward.losses import qr_iql_loss
from mtrec.rl.virtual_taobao import (
    LAST_CLICKS,
    MAX_CLICKS,
    N_ITEM_FEATURES,
    N_USER_FEATURES,
    PAGE_INDEX,
    VirtualTaobaoEnv,
)

N_CLICK_VALUES = MAX_CLICKS + 1
N_USER_ACTIONS = 2 * N_CLICK_VALUES  # (clicks, leave)
N_FEATURES = N_USER_FEATURES + 2 + N_ITEM_FEATURES
MAX_PAGES = 100
READOUTS = ("expected-next", "advantage", "cvar")
WEIGHTS_FILE = "user_qnetwork.pt"
CONFIG_FILE = "user_reward.json"


def user_action(clicks: np.ndarray | torch.Tensor, leave: np.ndarray | torch.Tensor):
    """Index of the user action (clicks, leave): clicks + 11 * leave."""
    return clicks + N_CLICK_VALUES * leave


def state_features(
    user: np.ndarray, page_index: np.ndarray, last_clicks: np.ndarray, page: np.ndarray
) -> np.ndarray:
    """[B, 117] float32: user features, page index / 100, last clicks / 10, page weights."""
    return np.concatenate(
        [
            np.asarray(user, dtype=np.float32).reshape(-1, N_USER_FEATURES),
            (np.asarray(page_index, dtype=np.float32) / MAX_PAGES).reshape(-1, 1),
            (np.asarray(last_clicks, dtype=np.float32) / MAX_CLICKS).reshape(-1, 1),
            np.asarray(page, dtype=np.float32).reshape(-1, N_ITEM_FEATURES),
        ],
        axis=1,
    )


def features_from_observation(observation: np.ndarray, page: np.ndarray) -> np.ndarray:
    """The user's state when the recommender shows `page` after `observation`."""
    observation = np.asarray(observation).reshape(-1, observation.shape[-1])
    return state_features(
        observation[:, :N_USER_FEATURES],
        observation[:, PAGE_INDEX],
        observation[:, LAST_CLICKS],
        np.clip(np.asarray(page, dtype=np.float32), -1.0, 1.0),
    )


@dataclass
class UserLog:
    """Logged user transitions, in session order (row + 1 is the next state unless `leave`)."""

    user: np.ndarray  # [T, 88]
    page_index: np.ndarray  # [T]
    last_clicks: np.ndarray  # [T]
    page: np.ndarray  # [T, 27] the recommender's action
    clicks: np.ndarray  # [T]
    leave: np.ndarray  # [T] bool: the session ended after this page
    session: np.ndarray  # [T]
    # [T] bool: the page came from the uniform random sampler (not from the policy).
    random_page: np.ndarray | None = None
    policy: str = "uniform"

    def __len__(self) -> int:
        return len(self.clicks)

    @property
    def n_sessions(self) -> int:
        return int(self.session.max()) + 1 if len(self) else 0

    @property
    def ctr(self) -> float:
        """Clicks / pages / 10 over the whole log."""
        return float(self.clicks.sum() / max(len(self), 1) / MAX_CLICKS)

    def features(self) -> np.ndarray:
        return state_features(self.user, self.page_index, self.last_clicks, self.page)

    def actions(self) -> np.ndarray:
        return user_action(self.clicks.astype(np.int64), self.leave.astype(np.int64))


PagePolicy = Callable[[np.ndarray], np.ndarray]


def collect_behaviour_log(
    env: VirtualTaobaoEnv,
    n_sessions: int,
    seed: int,
    progress: bool = False,
    policy: PagePolicy | None = None,
    epsilon: float = 1.0,
    name: str | None = None,
) -> UserLog:
    """Run a behaviour recommender for `n_sessions` sessions from `env.reset(seed=seed)`.

    Without `policy`: uniform random pages (the action space's own sampler). With
    `policy` (observation -> 27-d page): an epsilon-mixture per page, the uniform
    sampler with probability `epsilon` and `policy` otherwise; the coin flips
    come from their own stream (numpy, seeded `seed`), so at `epsilon` = 1 the
    log is the uniform policy's log for the same seed. `random_page` records
    which pages were the sampler's.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    if policy is None:
        epsilon = 1.0
    coins = np.random.default_rng(seed)
    columns: dict[str, list] = {
        k: [] for k in ("user", "t", "last", "page", "c", "leave", "s", "random")
    }
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    for session in tqdm(range(n_sessions), desc="behaviour log", disable=not progress):
        if session:
            observation, _ = env.reset()
        while True:
            uniform = policy is None or bool(coins.random() < epsilon)
            if uniform:
                page = env.action_space.sample()
            else:
                page = np.clip(
                    np.asarray(policy(observation), dtype=np.float32).reshape(
                        env.action_space.shape
                    ),
                    env.action_space.low,
                    env.action_space.high,
                )
            following, clicks, terminated, truncated, _ = env.step(page)
            for key, value in (
                ("user", observation[:N_USER_FEATURES]),
                ("t", observation[PAGE_INDEX]),
                ("last", observation[LAST_CLICKS]),
                ("page", page),
                ("c", int(clicks)),
                ("leave", bool(terminated)),
                ("s", session),
                ("random", uniform),
            ):
                columns[key].append(value)
            observation = following
            if terminated or truncated:
                break
    return UserLog(
        user=np.asarray(columns["user"], dtype=np.float32),
        page_index=np.asarray(columns["t"], dtype=np.int64),
        last_clicks=np.asarray(columns["last"], dtype=np.int64),
        page=np.asarray(columns["page"], dtype=np.float32),
        clicks=np.asarray(columns["c"], dtype=np.int64),
        leave=np.asarray(columns["leave"], dtype=bool),
        session=np.asarray(columns["s"], dtype=np.int64),
        random_page=np.asarray(columns["random"], dtype=bool),
        policy=name or ("uniform" if policy is None else f"mixture(epsilon={epsilon})"),
    )


class UserQNetwork(nn.Module):
    """State features [B, 117] -> non-crossing quantile locations [B, 22, N]."""

    def __init__(self, n_quantiles: int, hidden: int = 128) -> None:
        super().__init__()
        self.n_quantiles = n_quantiles
        self.hidden = hidden
        self.mlp = nn.Sequential(
            nn.Linear(N_FEATURES, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, N_USER_ACTIONS * n_quantiles),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raw = self.mlp(features).unflatten(-1, (N_USER_ACTIONS, self.n_quantiles))
        return non_crossing(raw)


def _reward_defaults() -> RewardConfig:
    return RewardConfig()


@dataclass
class UserRewardConfig:
    """QR-IQL on the user's MDP. Objective settings default to the main pipeline's
    (`RewardConfig`): alpha, gamma, Huber kappa, N, the TD target, lr, clip."""

    alpha: float = field(default_factory=lambda: _reward_defaults().alpha)
    gamma: float = field(default_factory=lambda: _reward_defaults().gamma)
    huber_kappa: float = field(default_factory=lambda: _reward_defaults().huber_kappa)
    n_quantiles: int = field(default_factory=lambda: _reward_defaults().n_quantiles)
    target: str = field(default_factory=lambda: _reward_defaults().target)
    learning_rate: float = field(default_factory=lambda: _reward_defaults().learning_rate)
    grad_clip: float = field(default_factory=lambda: _reward_defaults().grad_clip)
    hidden: int = 128
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 4
    valid_fraction: float = 0.2
    # Next pages w' averaged over by the expected-next read-out (as many as the
    # main read-out's next items).
    next_page_samples: int = field(default_factory=lambda: _reward_defaults().next_item_samples)
    # The read-out (MentalRewardReadout): "expected-next", "advantage" or "cvar", the
    # main pipeline's three (METHOD.md section 2); the CVaR's level as the main one's.
    readout: str = "expected-next"
    cvar_level: float = field(default_factory=lambda: _reward_defaults().cvar_level)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in ("gradient", "stop_gradient"):
            raise ValueError(f"target must be 'gradient' or 'stop_gradient', got {self.target!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")


def _split_sessions(log: UserLog, valid_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    sessions = np.random.default_rng(seed).permutation(log.n_sessions)
    n_valid = max(1, int(round(valid_fraction * log.n_sessions)))
    if n_valid >= log.n_sessions:
        raise ValueError(
            f"the behaviour log has {log.n_sessions} sessions: too few to hold out "
            f"{valid_fraction:.0%} for validation and still train"
        )
    valid = np.isin(log.session, sessions[:n_valid])
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def _loss(network, features, actions, leave, rows, config):
    next_rows = np.minimum(rows + 1, len(features) - 1)  # placeholder where leave (masked)
    both = network(features[torch.from_numpy(np.concatenate([rows, next_rows]))])
    current, following = both[: len(rows)], both[len(rows) :]
    target = following.detach() if config.target == "stop_gradient" else None
    return qr_iql_loss(
        current,
        actions[rows],
        following,
        leave[rows],
        alpha=config.alpha,
        gamma=config.gamma,
        kappa=config.huber_kappa,
        target_quantiles=target,
    )


def fit_user_reward(
    log: UserLog, config: UserRewardConfig, progress: bool = False
) -> tuple[UserQNetwork, list[dict], np.ndarray]:
    """QR-IQL on the log's transitions; early stop on held-out sessions' loss.
    Returns (network at the best epoch, per-epoch history, train rows)."""
    if len(log) == 0:
        raise ValueError("the behaviour log is empty")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_rows, valid_rows = _split_sessions(log, config.valid_fraction, config.seed)
    features = torch.from_numpy(log.features())
    actions = torch.from_numpy(log.actions())
    leave = torch.from_numpy(log.leave)
    network = UserQNetwork(config.n_quantiles, config.hidden)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    history, best, best_state, stale = [], math.inf, None, 0
    for epoch in tqdm(range(1, config.max_epochs + 1), desc="user QR-IQL", disable=not progress):
        network.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        running = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            parts = _loss(network, features, actions, leave, rows, config)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            running += float(parts.total.detach()) * len(rows)
        network.eval()
        with torch.no_grad():
            valid = _loss(network, features, actions, leave, valid_rows, config)
            log_policy = torch.log_softmax(q_values(network(features[valid_rows])), dim=-1)
            nll = -log_policy.gather(1, actions[valid_rows].view(-1, 1)).mean()
        record = {
            "epoch": epoch,
            "train_loss": running / len(train_rows),
            "valid_loss": float(valid.total),
            "valid_action_nll": float(nll),
        }
        history.append(record)
        if record["valid_loss"] < best - 1e-6:
            best, stale, best_state = record["valid_loss"], 0, copy.deepcopy(network.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    network.load_state_dict(best_state)
    return network.eval(), history, train_rows


class MentalRewardReadout:
    """A read-out r(s, a) of a trained user Q-network, z-scored. `kind`:

    - "expected-next": Q(s, a) - gamma * E_{w'} V(s'(a), w') (V = 0 after leave);
    - "cvar": the same with Q(s, a) replaced by the lower-tail CVaR at
      `cvar_level` of Z(s, a)'s quantiles (the risk-averse read-out);
    - "advantage": Q(s, a) - Q(s, a0), a0 = no click with the same leave: what the
      clicks on the page were worth to the user over not clicking on it (the main
      pipeline's Q(s, 1) - Q(s, 0)); 0 for pages without a click.
    """

    def __init__(
        self,
        network: UserQNetwork,
        next_pages: np.ndarray,
        gamma: float,
        mean: float = 0.0,
        std: float = 1.0,
        kind: str = "expected-next",
        cvar_level: float = 0.3,
    ) -> None:
        if kind not in READOUTS:
            raise ValueError(f"read-out must be one of {READOUTS}, got {kind!r}")
        self.network = network.eval()
        self.next_pages = torch.as_tensor(np.asarray(next_pages, dtype=np.float32))
        self.gamma = gamma
        self.mean = mean
        self.std = std
        self.kind = kind
        self.cvar_level = cvar_level

    @torch.no_grad()
    def raw(self, features: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """r(s, a) for states [B, 117] and user actions [B] (not z-scored)."""
        features = torch.as_tensor(np.asarray(features, dtype=np.float32)).view(-1, N_FEATURES)
        actions = torch.as_tensor(np.asarray(actions, dtype=np.int64)).view(-1)
        quantiles = self.network(features)  # [B, 22, N]
        clicks = actions % N_CLICK_VALUES
        if self.kind == "advantage":
            q_all = q_values(quantiles)
            no_click = actions - clicks  # (0 clicks, same leave)
            taken = q_all.gather(1, actions.view(-1, 1)).squeeze(1)
            return (taken - q_all.gather(1, no_click.view(-1, 1)).squeeze(1)).numpy()
        taken = quantiles[torch.arange(len(actions)), actions]  # [B, N]
        q = cvar_of_quantiles(taken, self.cvar_level) if self.kind == "cvar" else taken.mean(-1)
        stays = actions < N_CLICK_VALUES
        expected_next = torch.zeros_like(q)
        if bool(stays.any()):
            kept = features[stays]
            n_pages = len(self.next_pages)
            following = kept.unsqueeze(1).repeat(1, n_pages, 1)  # [S, M, 117]
            following[..., N_USER_FEATURES] += 1.0 / MAX_PAGES
            following[..., N_USER_FEATURES + 1] = (clicks[stays].float() / MAX_CLICKS).view(-1, 1)
            following[..., N_USER_FEATURES + 2 :] = self.next_pages
            values = soft_value(self.network(following.view(-1, N_FEATURES)))
            expected_next[stays] = values.view(-1, n_pages).mean(dim=1)
        return (q - self.gamma * expected_next).numpy()

    def __call__(self, features: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """z-scored r(s, a)."""
        return (self.raw(features, actions) - self.mean) / self.std

    def save(self, folder: Path, extra: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "network": self.network.state_dict(),
                "next_pages": self.next_pages,
            },
            folder / WEIGHTS_FILE,
        )
        description = {
            "n_quantiles": self.network.n_quantiles,
            "hidden": self.network.hidden,
            "gamma": self.gamma,
            "mean": self.mean,
            "std": self.std,
            "kind": self.kind,
            "cvar_level": self.cvar_level,
            **(extra or {}),
        }
        (folder / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> MentalRewardReadout:
        folder = Path(folder)
        description = json.loads((folder / CONFIG_FILE).read_text())
        state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
        network = UserQNetwork(int(description["n_quantiles"]), int(description["hidden"]))
        network.load_state_dict(state["network"])
        return cls(
            network,
            state["next_pages"].numpy(),
            float(description["gamma"]),
            float(description["mean"]),
            float(description["std"]),
            description.get("kind", "expected-next"),  # saved before read-out kinds existed
            float(description.get("cvar_level", 0.3)),
        )


def train_mental_reward(
    log: UserLog, config: UserRewardConfig, progress: bool = False
) -> tuple[MentalRewardReadout, dict]:
    """Fit QR-IQL and build the read-out; z-score statistics and a summary from the
    train sessions (the summary also reports how r relates to clicks and leaving)."""
    network, history, train_rows = fit_user_reward(log, config, progress=progress)
    generator = np.random.default_rng(config.seed)
    bank = log.page[generator.choice(len(log), size=config.next_page_samples, replace=False)]
    readout = MentalRewardReadout(
        network, bank, config.gamma, kind=config.readout, cvar_level=config.cvar_level
    )
    rewards = np.concatenate(
        [
            readout.raw(log.features()[chunk], log.actions()[chunk])
            for chunk in np.array_split(train_rows, max(1, len(train_rows) // 4096))
        ]
    )
    mean, std = float(rewards.mean()), float(rewards.std())
    readout.mean, readout.std = mean, (std if std > 0 else 1.0)
    clicked = log.clicks[train_rows] > 0
    left = log.leave[train_rows]
    summary = {
        "config": asdict(config),
        "behaviour_policy": log.policy,
        "sessions": log.n_sessions,
        "transitions": len(log),
        "train_transitions": int(len(train_rows)),
        "behaviour_ctr": log.ctr,
        **_page_source_ctr(log),
        "epochs": len(history),
        "best_epoch": min(history, key=lambda r: r["valid_loss"])["epoch"],
        "history": history,
        "reward_mean": mean,
        "reward_std": std,
        "mean_reward_clicked": _mean_or_none(rewards[clicked]),
        "mean_reward_not_clicked": _mean_or_none(rewards[~clicked]),
        "mean_reward_leave": _mean_or_none(rewards[left]),
        "mean_reward_stay": _mean_or_none(rewards[~left]),
    }
    return readout, summary


def _page_source_ctr(log: UserLog) -> dict:
    """Share of uniform random pages in the log and the CTR on each kind of page."""
    if log.random_page is None:
        return {}
    policy_pages = ~log.random_page

    def ctr(rows: np.ndarray) -> float | None:
        return float(log.clicks[rows].sum() / rows.sum() / MAX_CLICKS) if rows.any() else None

    return {
        "behaviour_random_page_share": float(log.random_page.mean()) if len(log) else None,
        "behaviour_ctr_random_pages": ctr(log.random_page),
        "behaviour_ctr_policy_pages": ctr(policy_pages),
    }


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


class MentalRewardWrapper(gymnasium.Wrapper):
    """Reward r_env + kappa * r_mental, with r_mental the z-scored read-out of the
    user's transition (state before the page, the page, the user's response).
    `info` carries both parts."""

    def __init__(self, env: gymnasium.Env, readout: MentalRewardReadout, kappa: float) -> None:
        super().__init__(env)
        self.readout = readout
        self.kappa = float(kappa)
        self._observation = None

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._observation = observation
        return observation, info

    def step(self, action):
        before = self._observation
        observation, reward, terminated, truncated, info = self.env.step(action)
        features = features_from_observation(before, action)
        taken = user_action(np.asarray([int(info["clicks"])]), np.asarray([int(terminated)]))
        mental = float(self.readout(features, taken)[0])
        self._observation = observation
        info = {**info, "r_env": float(reward), "r_mental": mental}
        return observation, float(reward) + self.kappa * mental, terminated, truncated, info
