"""The supervised ceiling of reward recovery (evaluation only; METHOD.md section 4).

The same encoder and head as the reward model, trained directly on the ground
truth of the positive exposures (the simulator's true reward, or ratings) with
a squared error: what the state (h, i) can support at best. A learned reward
is reported as a fraction of it. It reads the evaluation target, so nothing in
the pipeline may import it; only the recovery benchmark does.

Train rows fit it, valid rows stop it (their truth: fine for a ceiling, never
for a method), and it predicts every row from (h, i) alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtrec.config import RewardConfig
from mtrec.reward.distill import fit_state_regression


def fit_supervised_ceiling(
    config: RewardConfig,
    log: pd.DataFrame,
    truth: np.ndarray,
    n_items: int,
    device: torch.device,
    max_epochs: int = 100,
    patience: int = 5,
) -> tuple[np.ndarray, list[dict]]:
    """Predictions of the truth for every row of `log` and the fit's history."""
    return fit_state_regression(
        config, log, truth, n_items, device, max_epochs=max_epochs, patience=patience
    )
