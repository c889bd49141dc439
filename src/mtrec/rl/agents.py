"""PPO and SAC (Stable-Baselines3) on VirtualTaobao, with r_env or r_env + kappa * r_mental.

CTR is measured as VirtualTaobao's authors measure it in their DDPG example
(`virtualTB/ReinforcementLearning/main.py`): the deterministic policy runs whole
sessions on an evaluation environment and CTR = clicks / pages / 10, pooled over
the sessions. The evaluation sessions depend only on the seed, so every reward
variant of one seed is evaluated on the same users (a paired comparison).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from mtrec.rl.mental_reward import (
    MentalRewardReadout,
    MentalRewardWrapper,
    UserLog,
    collect_behaviour_log,
)
from mtrec.rl.virtual_taobao import MAX_CLICKS, VirtualTaobaoEnv

Algorithm = Literal["ppo", "sac"]
RewardKind = Literal["env", "env+mental"]
EVAL_SEED_OFFSET = 1_000_000
# The behaviour agent of the reward model's log: seed BEHAVIOUR_SEED_OFFSET + reward seed.
BEHAVIOUR_SEED_OFFSET = 2_000_000


@dataclass
class AgentConfig:
    algorithm: Algorithm = "ppo"
    reward: RewardKind = "env"
    steps: int = 100_000
    seed: int = 0
    kappa: float = 0.2
    # PPO: env steps per rollout and minibatch size (SB3 defaults: 2048 and 64).
    ppo_n_steps: int = 2048
    ppo_batch_size: int = 64
    # SAC: SB3's default is one gradient step per env step (~60 env steps/s on one
    # CPU thread); a budget trains `sac_gradient_steps` every `sac_train_freq` steps.
    sac_train_freq: int = 1
    sac_gradient_steps: int = 1
    sac_learning_starts: int = 1_000
    eval_sessions: int = 200
    device: str = "cpu"


class ProgressCallback(BaseCallback):
    """A tqdm bar over env steps, and the running training CTR (from r_env)."""

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        super().__init__()
        self.total = total
        self.description = description
        self.enabled = enabled
        self.clicks = 0.0
        self.pages = 0

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, desc=self.description, disable=not self.enabled)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            self.clicks += info.get("clicks", 0)
            self.pages += 1
        self.bar.update(self.training_env.num_envs)
        if self.pages and self.num_timesteps % 2048 == 0:
            self.bar.set_postfix(train_ctr=f"{self.clicks / self.pages / MAX_CLICKS:.3f}")
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def build_agent(config: AgentConfig, env) -> BaseAlgorithm:
    if config.algorithm == "ppo":
        return PPO(
            "MlpPolicy",
            env,
            seed=config.seed,
            device=config.device,
            verbose=0,
            n_steps=config.ppo_n_steps,
            batch_size=config.ppo_batch_size,
        )
    if config.algorithm == "sac":
        return SAC(
            "MlpPolicy",
            env,
            seed=config.seed,
            device=config.device,
            verbose=0,
            train_freq=(config.sac_train_freq, "step"),
            gradient_steps=config.sac_gradient_steps,
            learning_starts=config.sac_learning_starts,
        )
    raise ValueError(f"algorithm must be 'ppo' or 'sac', got {config.algorithm!r}")


def evaluate_ctr(
    model: BaseAlgorithm,
    virtual_taobao_path: str | os.PathLike | None,
    seed: int,
    sessions: int,
) -> dict[str, float]:
    """Deterministic policy over `sessions` sessions of a fresh environment seeded
    EVAL_SEED_OFFSET + seed: pooled CTR (clicks / pages / 10) and the mean of the
    environment's own end-of-session `info["CTR"]`."""
    env = VirtualTaobaoEnv(virtual_taobao_path)
    clicks = pages = 0
    session_ctr = []
    observation, _ = env.reset(seed=EVAL_SEED_OFFSET + seed)
    for session in range(sessions):
        if session:
            observation, _ = env.reset()
        while True:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, info = env.step(action)
            clicks += reward
            pages += 1
            if terminated or truncated:
                session_ctr.append(info["CTR"])
                break
    return {
        "ctr": clicks / pages / MAX_CLICKS,
        "session_ctr": float(np.mean(session_ctr)),
        "eval_pages": pages,
        "eval_sessions": sessions,
    }


def learn_agent(
    config: AgentConfig,
    virtual_taobao_path: str | os.PathLike | None,
    readout: MentalRewardReadout | None = None,
    progress: bool = True,
) -> tuple[BaseAlgorithm, dict]:
    """Train one agent (no evaluation); returns the model and its training figures."""
    if config.reward == "env+mental" and readout is None:
        raise ValueError("reward 'env+mental' needs a trained mental reward read-out")
    if config.reward not in ("env", "env+mental"):
        raise ValueError(f"reward must be 'env' or 'env+mental', got {config.reward!r}")
    env = VirtualTaobaoEnv(virtual_taobao_path)
    if config.reward == "env+mental":
        env = MentalRewardWrapper(env, readout, config.kappa)
    model = build_agent(config, env)
    callback = ProgressCallback(
        config.steps, f"{config.algorithm} {config.reward} seed {config.seed}", progress
    )
    began, began_cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=config.steps, callback=callback)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
    return model, {
        "env_steps": int(model.num_timesteps),
        "train_ctr": callback.clicks / max(callback.pages, 1) / MAX_CLICKS,
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "seconds_per_100k_steps": seconds / model.num_timesteps * 100_000,
        "cpu_seconds_per_100k_steps": cpu_seconds / model.num_timesteps * 100_000,
    }


def train_agent(
    config: AgentConfig,
    virtual_taobao_path: str | os.PathLike | None,
    readout: MentalRewardReadout | None = None,
    mlflow_uri: str | None = None,
    experiment: str = "virtual-taobao",
    progress: bool = True,
) -> dict:
    """Train one agent and evaluate it; returns CTR, steps and timings (one MLflow
    run per call when `mlflow_uri` is given)."""
    model, figures = learn_agent(config, virtual_taobao_path, readout, progress)
    evaluation = evaluate_ctr(model, virtual_taobao_path, config.seed, config.eval_sessions)
    result = {
        **asdict(config),
        **evaluation,
        **figures,
        "torch_threads": torch.get_num_threads(),
    }
    if mlflow_uri:
        _log_to_mlflow(result, mlflow_uri, experiment)
    return result


def collect_ppo_mixture_log(
    env: VirtualTaobaoEnv,
    virtual_taobao_path: str | os.PathLike | None,
    n_sessions: int,
    seed: int,
    agent_steps: int,
    epsilon: float,
    progress: bool = False,
    ppo_n_steps: int = AgentConfig.ppo_n_steps,
) -> tuple[UserLog, dict]:
    """A behaviour log from a PPO agent trained on r_env, mixed per page with the
    uniform random recommender (probability `epsilon`).

    The agent is trained for `agent_steps` env steps with seed
    BEHAVIOUR_SEED_OFFSET + `seed` (so it is none of the evaluated agents, whose
    seeds are small) and acts with its deterministic policy: the stochastic
    policy of a PPO agent this young clicks hardly more than the random one
    (training CTR about 0.03 after 51k steps, against 0.3 deterministic). The
    sessions come from `env.reset(seed=seed)`, the same users as the uniform
    policy's log of that seed. `ppo_n_steps`: the agent's rollout length (SB3's
    2048 by default, as the evaluated agents). Returns the log and the agent's
    training figures.
    """
    config = AgentConfig(
        algorithm="ppo",
        reward="env",
        steps=agent_steps,
        seed=BEHAVIOUR_SEED_OFFSET + seed,
        ppo_n_steps=ppo_n_steps,
    )
    model, figures = learn_agent(config, virtual_taobao_path, progress=progress)

    def policy(observation: np.ndarray) -> np.ndarray:
        return model.predict(observation, deterministic=True)[0]

    name = f"ppo-mixture(agent_steps={agent_steps}, epsilon={epsilon}, deterministic)"
    log = collect_behaviour_log(
        env, n_sessions, seed, progress=progress, policy=policy, epsilon=epsilon, name=name
    )
    agent = {
        "agent_seed": config.seed,
        **{f"agent_{key}": value for key, value in figures.items()},
    }
    return log, agent


def _log_to_mlflow(result: dict, uri: str, experiment: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    name = f"{result['algorithm']}-{result['reward']}-seed{result['seed']}"
    params = ("algorithm", "reward", "steps", "seed", "kappa", "sac_train_freq")
    params += ("sac_gradient_steps", "sac_learning_starts", "eval_sessions")
    with mlflow.start_run(run_name=name):
        mlflow.log_params({key: result[key] for key in params})
        mlflow.log_metrics(
            {
                key: float(result[key])
                for key in (
                    "ctr",
                    "session_ctr",
                    "train_ctr",
                    "env_steps",
                    "train_seconds",
                    "seconds_per_100k_steps",
                )
            }
        )
