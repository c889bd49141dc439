"""A model of the state (h, i) regressed on per-exposure targets.

The same encoder and head as the reward model (`RewardQNetwork`, one quantile,
read at action 1), fitted with a squared error to a target known for some
exposures and then evaluated on every state from (h, i) alone, so what it
learned is pooled over users and servable before the user acts. Two uses:

- distilled read-outs: the target is behaviour the platform logs (for example
  the value of the realised next state under the learned Q-network, or whether
  the user went on after a click), known for train and valid exposures;
- the supervised ceiling (`mtrec.reward.ceiling`, evaluation only): the target
  is the ground truth itself.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import torch

from mtrec.config import RewardConfig
from mtrec.reward.mdp import build_mdp
from mtrec.reward.qnetwork import RewardQNetwork
from mtrec.reward.train import quantiles_for_rows


@torch.no_grad()
def _predict(network: RewardQNetwork, mdp, rows: torch.Tensor, batch_rows: int) -> torch.Tensor:
    network.eval()
    parts = [quantiles_for_rows(network, mdp, chunk)[:, 1, 0] for chunk in rows.split(batch_rows)]
    return torch.cat(parts) if parts else torch.zeros(0)


def fit_state_regression(
    config: RewardConfig,
    log: pd.DataFrame,
    target: np.ndarray,
    n_items: int,
    device: torch.device,
    max_epochs: int = 100,
    patience: int = 5,
    batch_rows: int = 512,
    holdout_users: float | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Predictions for every row of `log` (a `concat_splits` log) and the
    per-epoch history. `target` [E] is NaN where unknown; rows of the train
    split with a finite target fit, those of the valid split stop (early
    stopping on their squared error). With `holdout_users` (a fraction), the
    train rows of that share of users (drawn with `config.seed`) stop instead
    and do not fit: for targets the valid split does not have."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    target = np.asarray(target, dtype=float)
    known = np.isfinite(target)
    split = log["split"].to_numpy()
    # States only look back (h_t and i_t), so one MDP over the whole log serves all splits.
    mdp = build_mdp(log, config.backbone.max_history).to(device)
    fitting = known & (split == "train")
    stopping = known & (split == "valid")
    if holdout_users is not None:
        users = log["user_idx"].to_numpy()
        distinct = np.unique(users)
        draw = np.random.default_rng(config.seed).random(len(distinct)) < holdout_users
        held_out = np.isin(users, distinct[draw])
        fitting, stopping = fitting & ~held_out, fitting & held_out
    if not fitting.any() or not stopping.any():
        raise ValueError(
            f"no rows with a finite target to fit ({int(fitting.sum())}) or to stop on "
            f"({int(stopping.sum())}): set holdout_users when the valid split has no target"
        )
    fit_rows = torch.from_numpy(np.flatnonzero(fitting)).to(device)
    stop_rows = torch.from_numpy(np.flatnonzero(stopping)).to(device)
    values = torch.from_numpy(np.nan_to_num(target)).float().to(device)
    # Standardised targets: the head starts near their scale.
    centre, scale = float(values[fit_rows].mean()), float(values[fit_rows].std().clamp(min=1e-6))
    network = RewardQNetwork(config.backbone, n_items, 1, config.head_hidden).to(device)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history: list[dict] = []
    best, best_state, stale = math.inf, None, 0
    for epoch in range(1, max_epochs + 1):
        network.train()
        order = fit_rows[torch.randperm(len(fit_rows), generator=generator).to(device)]
        total = 0.0
        for chunk in order.split(batch_rows):
            predicted = quantiles_for_rows(network, mdp, chunk)[:, 1, 0]
            loss = torch.mean((predicted - (values[chunk] - centre) / scale) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
        stop = _predict(network, mdp, stop_rows, 4 * batch_rows)
        valid_mse = float(torch.mean((stop - (values[stop_rows] - centre) / scale) ** 2))
        history.append(
            {"epoch": epoch, "train_mse": total / max(len(fit_rows), 1), "valid_mse": valid_mse}
        )
        if valid_mse < best - 1e-6:
            best, stale, best_state = valid_mse, 0, copy.deepcopy(network.state_dict())
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    every_row = torch.arange(len(log), device=device)
    predictions = _predict(network, mdp, every_row, 4 * batch_rows) * scale + centre
    return predictions.cpu().numpy(), history
