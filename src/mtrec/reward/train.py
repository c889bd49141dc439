"""Stage `train_reward`: fit the QR-IQL Q-network on the train exposures.

Each epoch is scored on the validation exposures (their states see the train
history). The kept epoch is the one with the best `config.monitor`: by default
the held-out negative log-likelihood of the users' logged responses under the
soft-Q policy pi(a|s) = softmax_a Q(s, a), a criterion that exists on real
data (the IQ-Learn objective itself is not a reward-quality criterion). The
best epoch's weights are saved with the config that rebuilds them.

Where the validation split carries a ground truth (the simulator's
`true_reward`, ratings), each epoch also records how the read-out of the
validation positives tracks it (`truth_valid_*` columns of history.csv):
reporting only, never read by the selection.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mtrec.config import RewardConfig
from mtrec.device import resolve_device
from mtrec.reward.inference import q_values
from mtrec.reward.losses import LossParts, iq_learn_chi2_loss, qr_iql_loss
from mtrec.reward.mdp import (
    ExposureMDP,
    build_mdp,
    concat_splits,
    display_distribution,
    n_actions,
    window_starts,
)
from mtrec.reward.qnetwork import RewardQNetwork, save_next_item_distribution, save_qnetwork
from mtrec.seeding import seed_everything

# Columns the reward model may read: never a satisfaction signal.
BEHAVIOUR_COLUMNS = ["user_idx", "item_idx", "timestamp", "response"]


def behaviour_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The exposure log without satisfaction signals (they are evaluation-only)."""
    return frame[BEHAVIOUR_COLUMNS].copy()


def group_rows_by_history(mdp: ExposureMDP, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows that share h_t go to one backbone row: (positives [S, L], items [S, G],
    state_index [S, G], group [R], slot [R]); row r is at [group[r], slot[r]]."""
    keys = mdp.state_keys(rows)
    unique_keys, group = torch.unique(keys, return_inverse=True)
    order = torch.argsort(group, stable=True)
    counts = torch.bincount(group, minlength=len(unique_keys))
    first = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(group)
    slot[order] = torch.arange(len(rows), device=rows.device) - first[group[order]]
    representative = torch.empty_like(unique_keys).scatter_(0, group, rows)
    positives, lengths = mdp.histories(representative)
    width = int(counts.max())
    items = torch.zeros(len(unique_keys), width, dtype=torch.long, device=rows.device)
    items[group, slot] = mdp.items[rows]
    state_index = lengths.unsqueeze(1).expand(-1, width)
    return positives, items, state_index, group, slot


def quantiles_for_rows(
    network: RewardQNetwork,
    mdp: ExposureMDP,
    rows: torch.Tensor,
    max_cells: int | None = None,
) -> torch.Tensor:
    """lambda(s) for the states of `rows` [R] -> [R, 2, N]; each distinct history
    goes through the backbone once, with all the items shown in that state.

    States are padded to the widest one. When widths vary a lot (a real log can
    show hundreds of items in one state and one in the next) the padded
    [states, width] grid is run in batches of states of similar width holding
    at most `max_cells` cells (default: max(2 R, 4096)); otherwise DIN's target
    attention, which costs memory per cell, asked for 7 GB on the simulator."""
    positives, items, state_index, group, slot = group_rows_by_history(mdp, rows)
    n_states, width = items.shape
    max_cells = max_cells or max(2 * len(rows), 4096)
    if n_states * width <= max_cells:
        return network(positives, items, state_index)[group, slot]
    counts = torch.bincount(group, minlength=n_states)
    by_width = torch.argsort(counts)
    widths = counts[by_width].tolist()  # ascending
    position = torch.empty_like(group)  # a row's index among the rows of its batch
    parts, row_order = [], []
    start = 0
    while start < n_states:
        # The widest state of the batch is the last one; grow while the grid fits.
        end = start + 1
        while end < n_states and (end + 1 - start) * widths[end] <= max_cells:
            end += 1
        states = by_width[start:end]
        batch_width = widths[end - 1]
        local = torch.full((n_states,), -1, dtype=torch.long, device=rows.device)
        local[states] = torch.arange(len(states), device=rows.device)
        members = torch.nonzero(local[group] >= 0).squeeze(1)
        quantiles = network(
            positives[states], items[states, :batch_width], state_index[states, :batch_width]
        )
        parts.append(quantiles[local[group[members]], slot[members]])
        row_order.append(members)
        start = end
    order = torch.cat(row_order)
    position[order] = torch.arange(len(order), device=rows.device)
    return torch.cat(parts)[position]


def transition_quantiles(
    network: RewardQNetwork, mdp: ExposureMDP, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lambda(s), lambda(s')) for the transitions starting at `rows`; s' is row + 1.

    The next state of a terminal row is a placeholder (masked by the losses).
    """
    next_rows = (rows + 1).clamp(max=mdp.n_rows - 1)
    both = quantiles_for_rows(network, mdp, torch.cat([rows, next_rows]))
    return both[: len(rows)], both[len(rows) :]


def transition_loss(
    network: RewardQNetwork,
    mdp: ExposureMDP,
    rows: torch.Tensor,
    config: RewardConfig,
    weights: torch.Tensor | None = None,
    target_network: RewardQNetwork | None = None,
) -> LossParts:
    current, following = transition_quantiles(network, mdp, rows)
    if config.target == "stop_gradient":
        target = following.detach()
    elif config.target == "polyak":
        if target_network is None:
            raise ValueError("target 'polyak' needs a target network")
        with torch.no_grad():
            next_rows = (rows + 1).clamp(max=mdp.n_rows - 1)
            target = quantiles_for_rows(target_network, mdp, next_rows)
    else:
        target = None
    if weights is None:
        weights = mdp.loss_weights(rows)
    common = dict(
        quantiles=current,
        actions=mdp.actions[rows],
        next_quantiles=following,
        terminal=mdp.is_terminal[rows],
        alpha=config.alpha,
        gamma=config.gamma,
        weights=weights,
        target_quantiles=target,
    )
    if config.objective == "iq-learn":
        parts = iq_learn_chi2_loss(**common)
    else:
        parts = qr_iql_loss(**common, kappa=config.huber_kappa)
    if config.behaviour_weight == 0:
        return parts
    behaviour = behaviour_nll(current, mdp.actions[rows], weights)
    return LossParts(
        total=parts.total + config.behaviour_weight * behaviour,
        td=parts.td,
        value=parts.value,
        behaviour=behaviour,
    )


def behaviour_nll(
    quantiles: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean negative log-likelihood of the logged actions under the soft-Q policy
    softmax_a Q(s, a): quantiles [B, A, N], actions [B], weights [B] (0/1) or None."""
    log_policy = torch.log_softmax(q_values(quantiles), dim=-1)
    taken = -log_policy.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    if weights is None:
        return taken.mean()
    weights = weights.to(taken.dtype)
    return (taken * weights).sum() / weights.sum().clamp(min=1.0)


@dataclass(frozen=True)
class RewardLogs:
    """The behaviour-only logs the reward model trains and validates on."""

    train: ExposureMDP  # train rows only: a user's last train exposure is terminal
    train_and_valid: ExposureMDP  # states of valid rows see the train history
    valid_rows: torch.Tensor  # rows of `train_and_valid` that belong to the valid split


def prepare_logs(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    max_history: int,
    session_gap: int | None = None,
    leave_action: bool = False,
) -> RewardLogs:
    """The train MDP and the train + valid MDP. In the leave-aware MDP a user's
    last train row is censored when the user has valid rows (the log goes on
    there, so it is no end; see `build_mdp`), and every user's last valid row is
    censored: whether a user's log goes on after the validation split is not
    read from the test split, which never informs the epoch choice."""
    train_log = behaviour_only(train)
    joined = concat_splits({"train": train_log, "valid": behaviour_only(valid)})
    valid_rows = np.flatnonzero(joined["split"].to_numpy() == "valid")
    train_continues = joined_continues = None
    if leave_action:  # only the leave-aware MDP reads censoring
        train_continues = np.isin(train_log["user_idx"].to_numpy(), valid["user_idx"].to_numpy())
        joined_continues = np.ones(len(joined), dtype=bool)
    return RewardLogs(
        train=build_mdp(train_log, max_history, session_gap, leave_action, train_continues),
        train_and_valid=build_mdp(joined, max_history, session_gap, leave_action, joined_continues),
        valid_rows=torch.from_numpy(valid_rows.astype(np.int64)),
    )


@torch.no_grad()
def validation_metrics(
    network: RewardQNetwork,
    mdp: ExposureMDP,
    rows: torch.Tensor,
    config: RewardConfig,
    batch_rows: int = 4096,
) -> dict[str, float]:
    """Objective and action negative log-likelihood (soft-Q policy) on `rows`
    (the leave-aware MDP: on its uncensored rows, over the four joint actions)."""
    network.eval()
    total = td = value = nll = 0.0
    if mdp.leave_action:
        rows = rows[~mdp.censored[rows]]
    for chunk in torch.split(rows, batch_rows):
        parts = transition_loss(
            network, mdp, chunk, config.model_copy(update={"target": "gradient"})
        )
        current = quantiles_for_rows(network, mdp, chunk)
        log_policy = torch.log_softmax(q_values(current), dim=-1)
        taken = log_policy.gather(1, mdp.actions[chunk].unsqueeze(1)).squeeze(1)
        share = len(chunk) / len(rows)
        total += float(parts.total) * share
        td += float(parts.td) * share
        value += float(parts.value) * share
        nll += float(-taken.mean()) * share
    return {"loss": total, "td": td, "value": value, "action_nll": nll}


# Validation metric each `RewardConfig.monitor` selects by (lower is better).
MONITORED = {"action_nll": "valid_action_nll", "loss": "valid_loss"}


def best_epoch(history: list[dict], monitor: str) -> int:
    """The epoch the selection keeps: lowest `MONITORED[monitor]`, earliest on ties."""
    column = MONITORED[monitor]
    return min(history, key=lambda record: (record[column], record["epoch"]))["epoch"]


def fit_qnetwork(
    config: RewardConfig,
    logs: RewardLogs,
    n_items: int,
    device: torch.device,
    progress: bool = True,
    epoch_report: Callable[[RewardQNetwork], dict[str, float]] | None = None,
) -> tuple[RewardQNetwork, list[dict]]:
    """Train; keep the epoch with the best validation `config.monitor`; stop after
    `config.patience` epochs without improvement. `epoch_report(network)` adds
    evaluation-only columns to each epoch's record (never used to choose).
    Returns (network, history)."""
    seed_everything(config.seed, python=False)
    generator = torch.Generator().manual_seed(config.seed)
    network = RewardQNetwork(
        config.backbone,
        n_items,
        config.n_quantiles,
        config.head_hidden,
        n_actions=n_actions(config.leave_action),
    )
    network.to(device)
    train_mdp = logs.train.to(device)
    valid_mdp = logs.train_and_valid.to(device)
    valid_rows = logs.valid_rows.to(device)
    target_network = None
    if config.target == "polyak":
        target_network = copy.deepcopy(network).eval()
        for parameter in target_network.parameters():
            parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    starts = window_starts(train_mdp.n_rows, config.window)
    offsets = torch.arange(config.window)
    history: list[dict] = []
    monitored = MONITORED[config.monitor]
    best_score, best_state, stale = math.inf, None, 0
    for epoch in range(1, config.max_epochs + 1):
        network.train()
        began, began_cpu = time.perf_counter(), time.process_time()
        order = starts[torch.randperm(len(starts), generator=generator)]
        batches = torch.split(order, config.windows_per_batch)
        running = 0.0
        for batch_starts in tqdm(batches, desc=f"reward epoch {epoch}", disable=not progress):
            rows = (batch_starts.unsqueeze(-1) + offsets).flatten()
            rows = rows[rows < train_mdp.n_rows].to(device)
            parts = transition_loss(network, train_mdp, rows, config, target_network=target_network)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            if target_network is not None:
                _polyak_update(target_network, network, config.polyak_rate)
            running += float(parts.total.detach()) * len(rows)
        metrics = validation_metrics(network, valid_mdp, valid_rows, config)
        record = {
            "epoch": epoch,
            "train_loss": running / train_mdp.n_rows,
            **{f"valid_{name}": value for name, value in metrics.items()},
            "seconds": time.perf_counter() - began,
            "cpu_seconds": time.process_time() - began_cpu,
        }
        if epoch_report is not None:
            record.update(epoch_report(network))
        history.append(record)
        if record[monitored] < best_score - 1e-6:
            best_score, stale = record[monitored], 0
            best_state = copy.deepcopy(network.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    return network.eval(), history


@torch.no_grad()
def _polyak_update(target: torch.nn.Module, online: torch.nn.Module, rate: float) -> None:
    for target_parameter, parameter in zip(target.parameters(), online.parameters(), strict=True):
        target_parameter.lerp_(parameter, rate)


def irl_ablation_config(config: RewardConfig) -> RewardConfig:
    """The "-IRL" ablation of a config: same keys, N = 1 and the plain chi^2 objective."""
    changed = {**config.model_dump(), "objective": "iq-learn", "n_quantiles": 1}
    return RewardConfig.model_validate(changed)


def reward_runs(config: RewardConfig, models: Path, backbone: str) -> dict[Path, RewardConfig]:
    """The reward models of `backbone`'s candidates, folder -> config: QR-IQL and,
    with `irl_ablation`, its -IRL ablation (what the `irl` guidance reads)."""
    from mtrec.reward import reward_model_dir

    own = config.for_backbone(backbone)
    runs = {reward_model_dir(models, backbone): own}
    if config.irl_ablation:
        runs[reward_model_dir(models, backbone, ablation=True)] = irl_ablation_config(own)
    return runs


def train_reward(
    config: RewardConfig, processed_dir: Path, out_dir: Path, progress: bool = True
) -> dict[str, Path]:
    """Train the mental reward model on `processed_dir` and save it under `out_dir`.

    Writes `qnetwork.pt`, `config.json` (rebuilds the network; also holds the
    reward config), `history.csv` (per-epoch curves, a DVC plot), `train_summary.json`
    and `timing.json` (wall-clock and CPU seconds: kept apart because they differ
    on every run, and .dvcignore keeps them out of DVC's hashes).
    """
    from mtrec.data.processed import load_processed

    processed = load_processed(processed_dir)
    device = resolve_device(config.device, "reward.device")
    logs = prepare_logs(
        processed.train,
        processed.valid,
        config.backbone.max_history,
        config.session_gap,
        config.leave_action,
    )
    from mtrec.reward.readout import validation_truth_report

    epoch_report = validation_truth_report(processed, config, device)
    n_items = processed.n_items
    display = display_distribution(processed.train, n_items)
    # The MDPs and the report hold what training reads; the splits' frames (all
    # columns, ids as strings) are ~1 GB at 10M exposures.
    del processed
    began = time.perf_counter()
    network, history = fit_qnetwork(
        config, logs, n_items, device, progress=progress, epoch_report=epoch_report
    )
    seconds = time.perf_counter() - began
    out_dir = Path(out_dir)
    save_qnetwork(
        network,
        out_dir,
        extra={
            "reward": config.model_dump(mode="json"),
            "best_epoch": best_epoch(history, config.monitor),
            "monitor": MONITORED[config.monitor],
        },
    )
    save_next_item_distribution(out_dir, display)
    timing_keys = ("seconds", "cpu_seconds")
    curves = [{k: v for k, v in record.items() if k not in timing_keys} for record in history]
    pd.DataFrame(curves).to_csv(out_dir / "history.csv", index=False)
    (out_dir / "train_summary.json").write_text(
        json.dumps(
            {
                "epochs": len(history),
                "monitor": MONITORED[config.monitor],
                "best_epoch": best_epoch(history, config.monitor),
                "history": curves,
            },
            indent=2,
        )
        + "\n"
    )
    epochs = [{"epoch": r["epoch"], **{k: r[k] for k in timing_keys}} for r in history]
    (out_dir / "timing.json").write_text(
        json.dumps({"train_seconds": seconds, "history": epochs}, indent=2) + "\n"
    )
    return {
        "model": out_dir,
        "history": out_dir / "history.csv",
        "summary": out_dir / "train_summary.json",
        "timing": out_dir / "timing.json",
    }
