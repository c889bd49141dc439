"""Reward read-out (the paper's Algorithm 2, "patching D_E") and its summaries.

For every exposure of train/valid/test, from the trained Q-network
(METHOD.md section 2; the formulas live in `mtrec.reward.inference`):

    r_k(s, a) = lambda_k(s, a) - gamma E_{i'}[V(h'_a, i')]   quantiles of the mental reward
    r(s, a)   = Q(s, a) - gamma E_{i'}[V(h'_a, i')]          their mean
    CVaR_q    = mean of the lowest q-mass of the r_k (boundary quantile fractional)
    advantage = Q(s, 1) - Q(s, 0)
    expected  = Q(s, a) - gamma E_{i'~display}[V(h'_a, i')]   (terminal or not)

Each action has its own next state: h'_1 = h + [i], h'_0 = h. For the logged
action a_t the next displayed item i' is the user's actual next item (the
observed next state); for the other action it is unknown and drawn from the
train log's display distribution. Terminal states have V = 0 for both actions.

`expected` draws i' for both actions and ignores terminality: it is a
function of (s, a) alone, what a service can compute before the user acts.

Each split is read with the MDP the model saw for it (`mdp.split_views`):
train rows with the train log alone (a user's last train exposure is
terminal, as in training), valid rows with train + valid, test rows with
the whole log.

Satisfaction signals are read here only to *evaluate* the rewards (summary and
plots), never to compute them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mtrec.config import RewardConfig
from mtrec.device import resolve_device
from mtrec.evaluation.metrics import auc, spearman
from mtrec.reward.calibration import calibration_report
from mtrec.reward.inference import (
    cvar_of_quantiles,
    expected_reward,
    leave_aware,
    next_state_values,
    response_q_values,
    reward_distribution,
    sample_next_items,
    soft_value,
    stay_advantage,
)
from mtrec.reward.mdp import (
    ExposureMDP,
    build_mdp,
    concat_splits,
    continues_after_view,
    display_distribution,
    split_views,
)
from mtrec.reward.proxies import behavioural_proxies, proxy_session_gap
from mtrec.reward.qnetwork import RewardQNetwork, load_qnetwork
from mtrec.reward.train import behaviour_only, transition_quantiles

__all__ = ["cvar_of_quantiles", "compute_rewards", "read_out_rewards", "recovery_report"]

KEY_COLUMNS = ["split", "split_row", "user_idx", "item_idx", "timestamp", "response"]
# Columns of a second (-IRL) model's read-out carry this prefix in the same file.
IRL_PREFIX = "irl_"
# Reward families that get a z-scored copy (mean and std over both actions of the train rows).
NORMALISED = ("mean", "cvar", "expected")


def reward_from_quantiles(
    quantiles: torch.Tensor,
    next_quantiles: torch.Tensor,
    terminal: torch.Tensor,
    gamma: float,
    cvar_level: float,
    expected_next: torch.Tensor,
    actions: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per transition: reward quantiles [R, 2, N], mean [R, 2], CVaR [R, 2],
    advantage [R], the observed next state's value [R] (0 if terminal) and what
    each response's reward subtracts [R, 2].

    quantiles lambda(s) [R, A, N]; next_quantiles lambda(s'_obs) [R, A, N] (the
    logged next state); expected_next [R, 2] = E_{i'}[V(h'_c, i')]; actions a_t
    [R] (joint actions in the leave-aware MDP).

    Leave-aware: each response's reward is that of staying after it, measured
    from leaving (`inference.response_reward`); staying has a next state even
    where the user left or the view ends, so only a logged response after
    which the user stayed subtracts the observed next state's value, every
    other E_{i'}[V(h'_c, i')].
    """
    observed = soft_value(next_quantiles)
    alive = (~terminal.bool()).to(observed.dtype)
    if not leave_aware(quantiles):
        next_values = next_state_values(expected_next, observed, actions, terminal)
        reward = reward_distribution(quantiles, next_values, gamma, cvar_level)
        return {**reward, "next_value": observed * alive, "next_values": next_values}
    stayed = ~terminal.bool()  # a leave and a censored row are both terminal
    logged = torch.nn.functional.one_hot((actions % 2).long(), 2).bool()  # [R, 2]
    use_observed = logged & stayed.unsqueeze(1)
    next_values = torch.where(use_observed, observed.unsqueeze(1), expected_next)
    reward = reward_distribution(quantiles, next_values, gamma, cvar_level)
    return {
        **reward,
        "next_value": observed * alive,
        "next_values": next_values,
        "stay_advantage": stay_advantage(quantiles),
    }


@torch.no_grad()
def _read_view(
    network: RewardQNetwork,
    mdp: ExposureMDP,
    rows: np.ndarray,
    config: RewardConfig,
    display: torch.Tensor,
    device: torch.device,
    generator: torch.Generator,
    batch_rows: int,
    progress: bool,
    name: str,
) -> dict[str, np.ndarray]:
    """Reward columns for `rows` of one split's MDP view."""
    parts: dict[str, list[np.ndarray]] = {}

    def keep(column: str, values: torch.Tensor) -> None:
        parts.setdefault(column, []).append(values.detach().cpu().numpy())

    chunks = torch.split(torch.from_numpy(rows), batch_rows)
    for chunk in tqdm(chunks, desc=f"reward read-out ({name})", disable=not progress):
        chunk = chunk.to(device)
        current, following = transition_quantiles(network, mdp, chunk)
        terminal = mdp.is_terminal[chunk]
        next_items = sample_next_items(display, len(chunk), config.next_item_samples, generator).to(
            device
        )
        positives, lengths = mdp.histories(chunk)
        # Not masked at terminal rows: this read-out is a function of (s, a)
        # alone and does not peek at whether the user went on. The service
        # answers /mental_reward with the same function (mtrec.serving.runtime).
        expected = expected_reward(
            network,
            positives,
            lengths,
            mdp.items[chunk],
            next_items,
            config.gamma,
            config.cvar_level,
            quantiles=current,
        )
        reward = reward_from_quantiles(
            current,
            following,
            terminal,
            config.gamma,
            config.cvar_level,
            expected_next=expected["next_values"],
            actions=mdp.actions[chunk],
        )
        response_q = response_q_values(current)
        for action, label in ((1, "pos"), (0, "neg")):
            keep(f"reward_{label}_mean", reward["mean"][:, action])
            keep(f"reward_{label}_cvar", reward["cvar"][:, action])
            keep(f"reward_{label}_expected", expected["mean"][:, action])
            keep(f"q_{label}", response_q[:, action])
            if "stay_advantage" in reward:
                keep(f"stay_advantage_{label}", reward["stay_advantage"][:, action])
            keep(f"next_value_{label}", reward["next_values"][:, action])
            for k in range(config.n_quantiles):
                keep(f"reward_{label}_q{k + 1:02d}", reward["quantiles"][:, action, k])
        keep("advantage", reward["advantage"])
        keep("next_value", reward["next_value"])
        keep("terminal", terminal)
    return {column: np.concatenate(values) for column, values in parts.items()}


@dataclass(frozen=True)
class ReadoutView:
    """One split's rows and the MDP they are read with (see `split_views`)."""

    name: str
    mdp: ExposureMDP  # on the read-out's device
    own: np.ndarray  # positions of the split's rows within the view
    target: np.ndarray  # the same rows' positions in the log
    max_history: int
    session_gap: int | None
    leave_action: bool = False


def readout_views(
    log: pd.DataFrame,
    max_history: int,
    session_gap: int | None,
    device: torch.device,
    splits: tuple[str, ...] | None = None,
    leave_action: bool = False,
) -> list[ReadoutView]:
    """The MDP view of each split of `log` (only `splits`, when given), built once:
    a caller reading the same log again (the per-epoch validation report of
    `train_reward`) passes them to `compute_rewards` instead of rebuilding them."""
    return list(iter_readout_views(log, max_history, session_gap, device, splits, leave_action))


def iter_readout_views(
    log: pd.DataFrame,
    max_history: int,
    session_gap: int | None,
    device: torch.device,
    splits: tuple[str, ...] | None = None,
    leave_action: bool = False,
) -> Iterator[ReadoutView]:
    """`readout_views` one at a time: a caller that drops each view before asking
    for the next holds one MDP instead of one per split (each view of the test
    split spans the whole log, so three views held 3 MDPs of the log's size).
    In the leave-aware MDP a user whose log goes on in a later split is censored
    at the view's end (the two-action MDP does not read censoring)."""
    for name, view_rows, own in split_views(log):
        if splits is not None and name not in splits:
            continue
        continues = continues_after_view(log, view_rows) if leave_action else None
        mdp = build_mdp(log.iloc[view_rows], max_history, session_gap, leave_action, continues)
        mdp = mdp.to(device)
        yield ReadoutView(name, mdp, own, view_rows[own], max_history, session_gap, leave_action)


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
    views: list[ReadoutView] | None = None,
) -> pd.DataFrame:
    """Reward columns for every row of `log` (a `concat_splits` log of behaviour
    columns), or only for the rows of `splits`; each split is read with its own
    MDP view (`split_views`; `views`: those of `readout_views` for this log, the
    network's max_history and the config's session_gap, when already built).
    Rows come back in `log` order."""
    network.eval()
    generator = torch.Generator().manual_seed(config.seed)
    selected = np.arange(len(log))
    if splits is not None:
        selected = np.flatnonzero(log["split"].isin(splits).to_numpy())
    if views is None:  # built one at a time, each dropped once read
        views = iter_readout_views(
            log, network.max_history, config.session_gap, device, splits, config.leave_action
        )
    columns: dict[str, np.ndarray] = {}
    wanted = (network.max_history, config.session_gap, config.leave_action)
    for view in views:
        if splits is not None and view.name not in splits:
            continue
        if (view.max_history, view.session_gap, view.leave_action) != wanted:
            raise ValueError(
                f"the {view.name} view was built for max_history {view.max_history}, "
                f"session_gap {view.session_gap} and leave_action {view.leave_action}, not "
                f"the read-out's {wanted[0]}, {wanted[1]} and {wanted[2]}"
            )
        values = _read_view(
            network,
            view.mdp,
            view.own,
            config,
            display,
            device,
            generator,
            batch_rows,
            progress,
            view.name,
        )
        # Rows of the output: the view's rows among the selected ones (`selected` is
        # sorted and holds every row of a selected split).
        target = np.searchsorted(selected, view.target)
        for column, array in values.items():
            if column not in columns:
                columns[column] = np.zeros(len(selected), dtype=array.dtype)
            columns[column][target] = array
        del view, values  # before the next view is built
    out = log[KEY_COLUMNS].iloc[selected].reset_index(drop=True)
    for column, array in columns.items():
        out[column] = array
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
        quantiles = torch.from_numpy(rewards[names].to_numpy(np.float64, copy=True))
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
        # Leave-aware models: the log-odds of staying after a click, and its lift
        # over staying after a skip.
        **(
            {
                "stay_advantage_pos": rewards["stay_advantage_pos"].to_numpy(),
                "stay_advantage_pos_minus_neg": (
                    rewards["stay_advantage_pos"] - rewards["stay_advantage_neg"]
                ).to_numpy(),
            }
            if "stay_advantage_pos" in rewards
            else {}
        ),
    }


def recovery_report(
    rewards: pd.DataFrame, truth: pd.DataFrame, baselines: pd.DataFrame
) -> dict[str, dict[str, float]]:
    """Evaluation only: how well each read-out separates satisfying from unsatisfying
    positive exposures, per split, beside the baselines every learned reward must
    beat (`baselines`, row-aligned with `rewards`: `proxies.behavioural_proxies`).

    `truth` is row-aligned with `rewards` and may hold `satisfied`, `rating`, `true_reward`.
    A score is compared on the rows where it is finite.
    """
    positive = (rewards["response"] == 1).to_numpy()
    scores = readout_scores(rewards)
    for name in baselines.columns:
        scores[name] = baselines[name].to_numpy(dtype=float)
    report: dict[str, dict[str, float]] = {}
    for split in ("train", "valid", "test"):
        in_split = positive & (rewards["split"] == split).to_numpy()
        if not in_split.any():
            continue
        entry: dict[str, float] = {}
        if "satisfied" in truth:
            known = in_split & truth["satisfied"].notna().to_numpy()
            entry["n_satisfied_known"] = int(known.sum())
            for name, score in scores.items():
                rows = known & np.isfinite(score)
                entry[f"auc_satisfied__{name}"] = auc(
                    truth["satisfied"].to_numpy()[rows], score[rows]
                )
        if "rating" in truth:
            rating = truth["rating"].to_numpy()
            extreme = in_split & ((rating >= 4) | (rating <= 2))
            entry["n_rating_4_vs_2"] = int(extreme.sum())
            for name, score in scores.items():
                rows = extreme & np.isfinite(score)
                entry[f"auc_rating_4_vs_2__{name}"] = auc(rating[rows] >= 4, score[rows])
        if "true_reward" in truth:
            true_reward = truth["true_reward"].to_numpy()
            known = in_split & np.isfinite(true_reward)
            for name, score in scores.items():
                rows = known & np.isfinite(score)
                entry[f"spearman_true_reward__{name}"] = spearman(score[rows], true_reward[rows])
            # Learned quantiles of r(s,1) on the true scale (affine map fitted on
            # train positives): coverage of their central intervals on this split.
            quantile_columns = sorted(c for c in rewards if re.fullmatch(r"reward_pos_q\d+", c))
            if len(quantile_columns) > 1:
                calibration = calibration_report(
                    rewards[quantile_columns].to_numpy(),
                    true_reward,
                    positive & (rewards["split"] == "train").to_numpy(),
                    in_split,
                )
                for key, value in calibration.items():
                    entry[f"calibration__{key}"] = value
        report[split] = entry
    return report


# Read-outs whose agreement with a ground truth each training epoch records.
TRACKED_READOUTS = (
    "reward_pos_mean",
    "reward_pos_minus_neg",
    "reward_pos_cvar",
    "reward_pos_expected",
    "advantage",
    "stay_advantage_pos",
)


def validation_truth_report(
    processed, config: RewardConfig, device: torch.device
) -> Callable[[RewardQNetwork], dict[str, float]] | None:
    """Evaluation only: a per-epoch report of how the read-out of the validation
    positives (read with the train + valid MDP, as validated) tracks the ground
    truth, or None when the validation split has none. Keys
    `truth_valid_spearman__<read-out>` (true reward) and
    `truth_valid_auc_rating_4_vs_2__<read-out>` (ratings). The training loop
    records them and never selects by them."""
    valid = processed.valid
    signals = [c for c in ("rating", "true_reward") if c in valid and valid[c].notna().any()]
    if not signals:
        return None
    frames = {"train": processed.train, "valid": valid}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(
        {
            name: frame[["user_idx", *(c for c in signals if c in frame)]]
            for name, frame in frames.items()
        }
    )
    truth = truth.loc[truth["split"] == "valid", signals].reset_index(drop=True)
    display = display_distribution(processed.train, processed.n_items)
    # The same log every epoch: its validation view is built once.
    views = readout_views(
        log,
        config.backbone.max_history,
        config.session_gap,
        device,
        splits=("valid",),
        leave_action=config.leave_action,
    )
    prefixes = {
        "spearman_true_reward__": "spearman__",
        "auc_rating_4_vs_2__": "auc_rating_4_vs_2__",
    }

    def report(network: RewardQNetwork) -> dict[str, float]:
        rewards = compute_rewards(
            network, log, config, display, device, progress=False, splits=("valid",), views=views
        )
        entry = recovery_report(rewards, truth, pd.DataFrame(index=rewards.index))["valid"]
        return {
            f"truth_valid_{short}{name}": float(entry[f"{prefix}{name}"])
            for prefix, short in prefixes.items()
            for name in TRACKED_READOUTS
            if f"{prefix}{name}" in entry
        }

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
    device = resolve_device(config.device, "reward.device")
    processed = load_processed(processed_dir)
    n_items = processed.n_items
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    signals = [
        c for c in ("satisfied", "rating", "true_reward") if any(c in f for f in frames.values())
    ]
    # Only the evaluation columns (same order: concat_splits sorts stably by the same keys).
    kept = ["user_idx", *signals, "watch_ratio"]
    truth = concat_splits({name: f[[c for c in kept if c in f]] for name, f in frames.items()})
    display = display_distribution(processed.train, n_items)
    # The splits' other columns (ids, strings) are not needed again: at 10M
    # exposures they held ~1 GB through the read-out.
    del processed, frames
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

    watch_ratio = truth["watch_ratio"].to_numpy() if "watch_ratio" in truth else None
    baselines = behavioural_proxies(
        log, n_items, proxy_session_gap(config.session_gap), watch_ratio
    )
    recovery = recovery_report(rewards, truth[signals], baselines)
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
        # Baselines beside every read-out in `recovery` (mtrec.reward.proxies).
        "proxies": {
            "columns": list(baselines.columns),
            "session_gap": proxy_session_gap(config.session_gap),
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
