"""A Gymnasium adapter over VirtualTaobao's `VirtualTB` environment.

VirtualTaobao (Shi et al., "Virtual-Taobao: Virtualizing real-world online retail
environment for reinforcement learning", AAAI 2019) ships no licence, so it is
not part of this repository: the user keeps a clone of
https://github.com/eyounx/VirtualTaobao and passes its folder as
`virtual_taobao_path` (or the environment variable `VIRTUAL_TAOBAO_PATH`). The
folder is imported through `sys.path`, never installed or copied, so it may be
read-only.

What the environment is (read from its code):
- observation (91 integers, the Box it declares): 88 one-hot user features,
  the user's last response (clicks on the last page 0..10 and a second
  categorical output 0..9 the code does not name) and the page index (pages
  shown so far, 0..100);
- action (27 floats in [-1, 1]): the weight vector that ranks the items of a page;
- reward: the clicks on that page (0..10); the session ends when the page index
  reaches the user's sampled patience (0..100 pages, at least one page).

Differences from calling `VirtualTB` directly, all deliberate:
- It draws its users and responses from torch's *global* RNG. Here every call
  runs on the adapter's own RNG stream (saved and restored around the call),
  so `reset(seed=s)` makes the episodes reproducible and neither the agent's
  torch RNG nor the environment's disturbs the other.
- At the end of a session `VirtualTB.step` returns the *next* user's first
  observation; the adapter returns the finished user's last observation
  (Gymnasium's terminal observation) and starts the next user on `reset`.
- `info["CTR"]` is the environment's own figure: clicks per page / 10 over
  the session so far.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

PATH_VARIABLE = "VIRTUAL_TAOBAO_PATH"
SOURCE_URL = "https://github.com/eyounx/VirtualTaobao"
CITATION = (
    "Shi, Yu, Da, Chen, Zeng: Virtual-Taobao: Virtualizing real-world online retail "
    "environment for reinforcement learning. AAAI 2019"
)
N_USER_FEATURES = 88
N_ITEM_FEATURES = 27
MAX_CLICKS = 10  # clicks on one page (10 items)
# Observation layout: user features, last clicks, last second response, page index.
LAST_CLICKS = N_USER_FEATURES
LAST_OTHER = N_USER_FEATURES + 1
PAGE_INDEX = N_USER_FEATURES + 2


class VirtualTaobaoNotFound(FileNotFoundError):
    """The VirtualTaobao folder was not given or does not hold its code."""


def _missing(message: str) -> VirtualTaobaoNotFound:
    return VirtualTaobaoNotFound(
        f"{message}. VirtualTaobao is not shipped with mtrec (it has no licence file): "
        f"clone {SOURCE_URL} and pass the clone's folder (the one holding "
        f"'virtualTB/') as virtual_taobao_path, or set {PATH_VARIABLE}. "
        f"Credit: {CITATION}."
    )


def resolve_virtual_taobao_path(path: str | os.PathLike | None = None) -> Path:
    """The folder holding `virtualTB/`, from `path` or $VIRTUAL_TAOBAO_PATH."""
    if path is None or str(path) == "":
        path = os.environ.get(PATH_VARIABLE) or None
    if path is None:
        raise _missing(f"virtual_taobao_path is not set (nor ${PATH_VARIABLE})")
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise _missing(f"virtual_taobao_path {str(folder)!r} is not a folder")
    needed = [
        folder / "virtualTB" / "envs" / "virtualTB.py",
        *(folder / "virtualTB" / "data" / name for name in MODEL_FILES),
    ]
    absent = [str(p.relative_to(folder)) for p in needed if not p.is_file()]
    if absent:
        raise _missing(f"virtual_taobao_path {str(folder)!r} lacks {', '.join(absent)}")
    return folder


MODEL_FILES = ("generator_model.pt", "action_model.pt", "leave_model.pt")


def import_virtual_tb(path: str | os.PathLike | None = None) -> type:
    """The class `virtualTB.envs.virtualTB.VirtualTB`, imported from the given folder.

    `virtualTB` imports the old `gym` package (install mtrec's `rl` extra). Its
    `gym.make("VirtualTB-v0")` fails under NumPy 2, so the class is used directly.
    """
    folder = resolve_virtual_taobao_path(path)
    loaded = sys.modules.get("virtualTB")
    if loaded is not None:
        where = Path(getattr(loaded, "__file__", "") or "").resolve()
        if folder not in where.parents:
            raise ImportError(
                f"a different virtualTB is already imported (from {where}); "
                f"cannot also import the one in {folder} in this process"
            )
    elif str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        import gym  # noqa: F401  (virtualTB needs it; a clear message if it is missing)
    except ImportError as error:
        raise ImportError(
            "VirtualTaobao imports the old 'gym' package: pip install 'mtrec[rl]' (gym>=0.26,<0.27)"
        ) from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from virtualTB.envs.virtualTB import VirtualTB
    return VirtualTB


class _PrivateTorchRNG:
    """Run code on a torch CPU RNG stream of its own, leaving the global one as it was."""

    def __init__(self, seed: int) -> None:
        self.state = torch.Generator().manual_seed(seed).get_state()

    def __enter__(self) -> None:
        self._outer = torch.random.get_rng_state()
        torch.random.set_rng_state(self.state)

    def __exit__(self, *exc: object) -> None:
        self.state = torch.random.get_rng_state()
        torch.random.set_rng_state(self._outer)


class VirtualTaobaoEnv(gymnasium.Env):
    """VirtualTaobao as a `gymnasium.Env` (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, virtual_taobao_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        virtual_tb = import_virtual_tb(virtual_taobao_path)
        # The constructor draws a first user: keep that off the global stream too.
        self._rng = _PrivateTorchRNG(0)
        with self._rng, torch.no_grad():
            self._env = virtual_tb()
        self.observation_space = spaces.Box(
            low=self._env.obs_low.astype(np.int32),
            high=self._env.obs_high.astype(np.int32),
            dtype=np.int32,
        )
        declared = self._env.action_space
        self.action_space = spaces.Box(
            low=declared.low, high=declared.high, shape=declared.shape, dtype=np.float32
        )
        self._needs_reset = True

    def _observation(self, user: np.ndarray, response: np.ndarray, page_index: int) -> np.ndarray:
        state = np.concatenate([np.asarray(user), np.asarray(response), [page_index]])
        return np.rint(state).astype(np.int32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = _PrivateTorchRNG(seed)
            self.action_space.seed(seed)
        with self._rng, torch.no_grad():
            state = self._env.reset()
        self._needs_reset = False
        return np.rint(state).astype(np.int32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after a session ends)")
        action = np.asarray(action, dtype=np.float32).reshape(self.action_space.shape)
        action = np.clip(action, self.action_space.low, self.action_space.high)
        user = self._env.cur_user
        with self._rng, torch.no_grad():
            _, reward, done, info = self._env.step(action)
        # On `done` VirtualTB has already drawn the next user; report the finished one.
        observation = self._observation(user, self._env.rend_action, self._env.total_c)
        self._needs_reset = bool(done)
        info = {"CTR": float(info["CTR"]), "clicks": int(reward)}
        return observation, float(reward), bool(done), False, info


def make_env(virtual_taobao_path: str | os.PathLike | None = None) -> VirtualTaobaoEnv:
    return VirtualTaobaoEnv(virtual_taobao_path)
