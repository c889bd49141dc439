"""Reward read-out (the paper's Algorithm 2, "patching D_E") and its summaries.

For every exposure of train/valid/test, from the trained Q-network:

    r_k(s, a) = lambda_k(s, a) - gamma V(s')      quantiles of the mental reward
    r(s, a)   = Q(s, a) - gamma V(s')             its mean   (V(s') = 0 if terminal)
    CVaR_q    = mean of the lowest ceil(q N) quantiles r_k
    advantage = Q(s, 1) - Q(s, 0)
    expected  = Q(s, a) - gamma E_{i'}[V(h'_a, i')]   (terminal or not)

`expected` replaces the observed next state by the expected value over next
displayed items i' (drawn from the train exposure distribution), with
h'_1 = h + [i] and h'_0 = h: the observed next item is random, so V(s') is
mostly noise (METHOD.md section 6). It is a function of (s, a) alone, so it
neither peeks at what the user did next nor rewards leaving: with the observed
read-out a user who leaves after a disappointment has V(s') = 0, which *raises*
r(s, a) when values are positive (measured on the simulator).

Satisfaction signals are read here only to *evaluate* the rewards (summary and
plots), never to compute them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mtrec.config import RewardConfig
from mtrec.evaluation.metrics import auc, spearman
from mtrec.reward.calibration import calibration_report
from mtrec.reward.losses import q_values, soft_value
from mtrec.reward.mdp import ExposureMDP, build_mdp, concat_splits, display_distribution
from mtrec.reward.qnetwork import RewardQNetwork, load_qnetwork
from mtrec.reward.train import behaviour_only, resolve_device, transition_quantiles

KEY_COLUMNS = ["split", "split_row", "user_idx", "item_idx", "timestamp", "response"]
# Columns of a second (-IRL) model's read-out carry this prefix in the same file.
IRL_PREFIX = "irl_"
# Reward families that get a z-scored copy (mean and std over both actions of the train rows).
NORMALISED = ("mean", "cvar", "expected")


def cvar_of_quantiles(quantiles: torch.Tensor, level: float) -> torch.Tensor:
    """Lower-tail CVaR at `level`: mean of the lowest ceil(level N) of [..., N] -> [...]."""
    if not 0.0 < level <= 1.0:
        raise ValueError(f"CVaR level must be in (0, 1], got {level}")
    count = max(1, math.ceil(level * quantiles.shape[-1] - 1e-9))
    return torch.sort(quantiles, dim=-1).values[..., :count].mean(dim=-1)


def reward_from_quantiles(
    quantiles: torch.Tensor,
    next_quantiles: torch.Tensor,
    terminal: torch.Tensor,
    gamma: float,
    cvar_level: float,
) -> dict[str, torch.Tensor]:
    """Per transition: reward quantiles [R, 2, N], mean [R, 2], CVaR [R, 2], advantage [R]."""
    alive = (~terminal.bool()).to(quantiles.dtype)
    next_value = soft_value(next_quantiles) * alive  # [R]
    reward_quantiles = quantiles - gamma * next_value.view(-1, 1, 1)
    q = q_values(quantiles)
    return {
        "quantiles": reward_quantiles,
        "mean": reward_quantiles.mean(dim=-1),
        "cvar": cvar_of_quantiles(reward_quantiles, cvar_level),
        "advantage": q[:, 1] - q[:, 0],
        "next_value": next_value,
    }


@torch.no_grad()
def expected_next_values(
    network: RewardQNetwork, mdp: ExposureMDP, rows: torch.Tensor, next_items: torch.Tensor
) -> torch.Tensor:
    """E_{i'}[V(h'_a, i')] for a = 0, 1 at `rows` [R], averaged over next_items [R, M] -> [R, 2]."""
    values = []
    for positives, lengths in (mdp.histories(rows), mdp.histories_after_positive(rows)):
        state_index = lengths.unsqueeze(1).expand_as(next_items)
        quantiles = network(positives, next_items, state_index)  # [R, M, 2, N]
        values.append(soft_value(quantiles.flatten(0, 1)).view_as(next_items).mean(dim=1))
    return torch.stack(values, dim=1)


@torch.no_grad()
def compute_rewards(
    network: RewardQNetwork,
    log: pd.DataFrame,
    config: RewardConfig,
    display: torch.Tensor,
    device: torch.device,
    batch_rows: int = 8192,
    progress: bool = True,
    splits: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Reward columns for every row of `log` (behaviour columns, sorted by user then
    event), or only for the rows of `splits` (states still see the whole log)."""
    network.eval()
    mdp = build_mdp(log, network.max_history, config.session_gap).to(device)
    selected = np.arange(len(log))
    if splits is not None:
        selected = np.flatnonzero(log["split"].isin(splits).to_numpy())
    generator = torch.Generator().manual_seed(config.seed)
    n = config.n_quantiles
    parts: dict[str, list[np.ndarray]] = {}

    def keep(name: str, values: torch.Tensor) -> None:
        parts.setdefault(name, []).append(values.detach().cpu().numpy())

    chunks = torch.split(torch.from_numpy(selected), batch_rows)
    for chunk in tqdm(chunks, desc="reward read-out", disable=not progress):
        rows = chunk.to(device)
        current, following = transition_quantiles(network, mdp, rows)
        terminal = mdp.is_terminal[rows]
        reward = reward_from_quantiles(
            current, following, terminal, config.gamma, config.cvar_level
        )
        next_items = torch.multinomial(
            display, len(rows) * config.next_item_samples, replacement=True, generator=generator
        ).view(len(rows), -1)
        expected_next = expected_next_values(network, mdp, rows, next_items.to(device))
        # Not masked at terminal rows: this read-out is a function of (s, a)
        # alone and does not peek at whether the user went on.
        expected = q_values(current) - config.gamma * expected_next
        for action, name in ((1, "pos"), (0, "neg")):
            keep(f"reward_{name}_mean", reward["mean"][:, action])
            keep(f"reward_{name}_cvar", reward["cvar"][:, action])
            keep(f"reward_{name}_expected", expected[:, action])
            keep(f"q_{name}", q_values(current)[:, action])
            for k in range(n):
                keep(f"reward_{name}_q{k + 1:02d}", reward["quantiles"][:, action, k])
        keep("advantage", reward["advantage"])
        keep("next_value", reward["next_value"])
        keep("terminal", terminal)
    out = log[KEY_COLUMNS].iloc[selected].reset_index(drop=True)
    for name, values in parts.items():
        out[name] = np.concatenate(values)
    return out


def add_normalised(rewards: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Add `<column>_z` for each family in NORMALISED, z-scored with the train rows'
    mean and std over both actions (one shift and scale per family, so the
    alignment loss sees r(s,1) and r(s,0) on one scale). Returns the statistics."""
    train = (rewards["split"] == "train").to_numpy()
    statistics = {}
    for family in NORMALISED:
        positive, negative = rewards[f"reward_pos_{family}"], rewards[f"reward_neg_{family}"]
        mean, std = _train_statistics(positive.to_numpy(), negative.to_numpy(), train)
        rewards[f"reward_pos_{family}_z"] = (positive - mean) / std
        rewards[f"reward_neg_{family}_z"] = (negative - mean) / std
        statistics[family] = {"mean": mean, "std": std}
    return statistics


def _train_statistics(
    positive: np.ndarray, negative: np.ndarray, train: np.ndarray
) -> tuple[float, float]:
    """Mean and std (1 if 0) of r(s,1) and r(s,0) pooled over the train rows."""
    pooled = np.concatenate([positive[train], negative[train]])
    mean, std = float(pooled.mean()), float(pooled.std())
    return mean, (std if std > 0 else 1.0)


def cvar_columns(level: float) -> tuple[str, str]:
    """Names of the z-scored CVaR_level columns of r(s, 1) and r(s, 0) that
    `with_cvar_columns` derives (the read-out itself stores `reward_*_cvar_z`
    at `reward.cvar_level` only)."""
    return (f"reward_pos_cvar@{level:g}_z", f"reward_neg_cvar@{level:g}_z")


def with_cvar_columns(rewards: pd.DataFrame, level: float) -> pd.DataFrame:
    """`rewards` plus the CVaR at `level` of r(s, 1) and r(s, 0), computed from the
    stored reward quantiles `reward_{pos,neg}_qNN` and z-scored like
    `add_normalised` (train rows, both actions pooled). This makes the risk level
    q a training option, tunable on validation without re-reading the rewards."""
    values = {}
    for action in ("pos", "neg"):
        names = sorted(c for c in rewards.columns if re.fullmatch(rf"reward_{action}_q\d+", c))
        if not names:
            raise KeyError(
                f"the reward table has no quantile columns reward_{action}_qNN to take a CVaR "
                "of (an -IRL-only read-out has one quantile; read out the QR-IQL model)"
            )
        quantiles = torch.from_numpy(rewards[names].to_numpy(np.float64))
        values[action] = cvar_of_quantiles(quantiles, level).numpy()
    train = (rewards["split"] == "train").to_numpy()
    mean, std = _train_statistics(values["pos"], values["neg"], train)
    positive, negative = cvar_columns(level)
    return rewards.assign(
        **{positive: (values["pos"] - mean) / std, negative: (values["neg"] - mean) / std}
    )


# Read-outs whose AUC against satisfaction the summary reports: name -> score.
def readout_scores(rewards: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "reward_pos_mean": rewards["reward_pos_mean"].to_numpy(),
        "reward_pos_minus_neg": (
            rewards["reward_pos_mean"] - rewards["reward_neg_mean"]
        ).to_numpy(),
        "advantage": rewards["advantage"].to_numpy(),
        "reward_pos_cvar": rewards["reward_pos_cvar"].to_numpy(),
        "reward_pos_expected": rewards["reward_pos_expected"].to_numpy(),
        "reward_pos_expected_minus_neg": (
            rewards["reward_pos_expected"] - rewards["reward_neg_expected"]
        ).to_numpy(),
    }


def recovery_report(
    rewards: pd.DataFrame, truth: pd.DataFrame, popularity: np.ndarray
) -> dict[str, dict[str, float]]:
    """Evaluation only: how well each read-out separates satisfying from unsatisfying
    positive exposures, per split, beside item popularity (the bar to beat).

    `truth` is row-aligned with `rewards` and may hold `satisfied`, `rating`, `true_reward`.
    """
    positive = (rewards["response"] == 1).to_numpy()
    scores = readout_scores(rewards)
    scores["item_popularity"] = popularity[rewards["item_idx"].to_numpy()].astype(float)
    report: dict[str, dict[str, float]] = {}
    for split in ("train", "valid", "test"):
        in_split = positive & (rewards["split"] == split).to_numpy()
        entry: dict[str, float] = {}
        if "satisfied" in truth:
            known = in_split & truth["satisfied"].notna().to_numpy()
            labels = truth["satisfied"].to_numpy()[known]
            entry["n_satisfied_known"] = int(known.sum())
            for name, score in scores.items():
                entry[f"auc_satisfied__{name}"] = auc(labels, score[known])
        if "rating" in truth:
            rating = truth["rating"].to_numpy()
            extreme = in_split & ((rating >= 4) | (rating <= 2))
            entry["n_rating_4_vs_2"] = int(extreme.sum())
            for name, score in scores.items():
                entry[f"auc_rating_4_vs_2__{name}"] = auc(rating[extreme] >= 4, score[extreme])
        if "true_reward" in truth:
            known = in_split & truth["true_reward"].notna().to_numpy()
            for name, score in scores.items():
                entry[f"spearman_true_reward__{name}"] = spearman(
                    score[known], truth["true_reward"].to_numpy()[known]
                )
            # Learned quantiles of r(s,1) on the true scale (affine map fitted on
            # train positives): coverage of their central intervals on this split.
            quantile_columns = sorted(c for c in rewards if re.fullmatch(r"reward_pos_q\d+", c))
            if len(quantile_columns) > 1:
                calibration = calibration_report(
                    rewards[quantile_columns].to_numpy(),
                    truth["true_reward"].to_numpy(),
                    positive & (rewards["split"] == "train").to_numpy(),
                    in_split,
                )
                for key, value in calibration.items():
                    entry[f"calibration__{key}"] = value
        report[split] = entry
    return report


def reward_by_step(rewards: pd.DataFrame, min_count: int = 20) -> pd.DataFrame:
    """Average mental reward of positives by their step (1-based index among the user's
    positives), the paper's Fig. 3a; steps with fewer than `min_count` positives dropped."""
    positives = rewards[rewards["response"] == 1]
    step = positives.groupby("user_idx").cumcount() + 1
    table = (
        positives.assign(step=step)
        .groupby("step")
        .agg(
            mean_reward=("reward_pos_mean", "mean"),
            mean_expected_reward=("reward_pos_expected", "mean"),
            n=("reward_pos_mean", "size"),
        )
        .reset_index()
    )
    return table[table["n"] >= min_count].reset_index(drop=True)


def reward_by_satisfaction(rewards: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Evaluation only: mean reward of positives per split and satisfaction label."""
    positive = rewards["response"] == 1
    if "satisfied" not in truth or truth.loc[positive, "satisfied"].notna().sum() == 0:
        return pd.DataFrame(
            columns=["split", "satisfied", "mean_reward", "mean_expected_reward", "n"]
        )
    frame = rewards[positive].assign(satisfied=truth.loc[positive, "satisfied"].to_numpy())
    frame = frame[frame["satisfied"].notna()]
    return (
        frame.groupby(["split", "satisfied"])
        .agg(
            mean_reward=("reward_pos_mean", "mean"),
            mean_expected_reward=("reward_pos_expected", "mean"),
            n=("reward_pos_mean", "size"),
        )
        .reset_index()
    )


def saved_reward_config(model_dir: Path) -> RewardConfig:
    """The reward config a Q-network was trained with (saved beside its weights)."""
    from mtrec.reward.qnetwork import read_qnetwork_description

    saved = read_qnetwork_description(model_dir)["metadata"]["reward"]
    return RewardConfig.model_validate(saved)


# The `reward` keys only the read-out uses (DVC stage read_out_rewards depends on
# them, train_reward does not): a read-out takes them from the current params,
# everything else (gamma, seed, the network) from the trained model.
READOUT_KEYS = ("cvar_level", "next_item_samples")


def with_readout_settings(saved: RewardConfig, current: RewardConfig) -> RewardConfig:
    """`saved` (a model's training config) with the read-out keys of `current`."""
    return saved.model_copy(update={key: getattr(current, key) for key in READOUT_KEYS})


def read_out_rewards(
    model_dir: Path,
    processed_dir: Path,
    rewards_path: Path,
    reports_dir: Path,
    config: RewardConfig | None = None,
    irl_model_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Write the per-exposure rewards (parquet) and, under `reports_dir`,
    `reward_summary.json`, `reward_by_step.csv` and `reward_by_satisfaction.csv`.

    `config` defaults to the reward config saved with the model (gamma, CVaR
    level, samples); the network is always the saved one. With `irl_model_dir`
    (a -IRL model), its reward columns are added with the prefix `irl_` (what
    the `irl` guidance reads), read out with `config`'s READOUT_KEYS.
    """
    from mtrec.data.processed import load_processed

    config = config or saved_reward_config(model_dir)
    device = resolve_device(config.device)
    processed = load_processed(processed_dir)
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(frames)  # same order: concat_splits sorts stably by the same keys
    display = display_distribution(processed.train, processed.n_items)
    network = load_qnetwork(model_dir, device)
    rewards = compute_rewards(network, log, config, display, device, progress=progress)
    normalisation = add_normalised(rewards)
    if irl_model_dir is not None:
        irl_config = with_readout_settings(saved_reward_config(irl_model_dir), config)
        irl_network = load_qnetwork(irl_model_dir, device)
        irl = compute_rewards(irl_network, log, irl_config, display, device, progress=progress)
        normalisation["irl"] = add_normalised(irl)
        reward_columns = [c for c in irl.columns if c not in KEY_COLUMNS]
        for column in reward_columns:
            rewards[f"{IRL_PREFIX}{column}"] = irl[column].to_numpy()
    rewards_path = Path(rewards_path)
    rewards_path.parent.mkdir(parents=True, exist_ok=True)
    rewards.to_parquet(rewards_path, index=False)

    popularity = np.zeros(processed.n_items + 1)
    items = processed.items
    popularity[items["item_idx"].to_numpy()] = items["train_positives"].to_numpy()
    signals = [c for c in ("satisfied", "rating", "true_reward") if c in truth.columns]
    recovery = recovery_report(rewards, truth[signals], popularity)
    summary = {
        "rows": int(len(rewards)),
        "normalisation": normalisation,
        "mean_by_split": {
            split: {
                column: float(group[column].mean())
                for column in (
                    "reward_pos_mean",
                    "reward_neg_mean",
                    "advantage",
                    "reward_pos_expected",
                )
            }
            for split, group in rewards.groupby("split")
        },
        "recovery": recovery,
    }
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "rewards": rewards_path,
        "summary": reports_dir / "reward_summary.json",
        "by_step": reports_dir / "reward_by_step.csv",
        "by_satisfaction": reports_dir / "reward_by_satisfaction.csv",
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=float) + "\n")
    reward_by_step(rewards).to_csv(paths["by_step"], index=False)
    reward_by_satisfaction(rewards, truth[signals]).to_csv(paths["by_satisfaction"], index=False)
    return paths
