"""ADT denoising losses (Wang et al., WSDM 2021): T-CE and R-CE on exposures.

Pure tensor functions. Inputs are CTR logits, 0/1 labels and a mask of real
exposure slots, all the same shape; padding slots never count. Neither loss
looks at a satisfaction signal: they treat large-loss positives as probable
false positives (noisy clicks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def drop_rate_at(step: int, max_drop_rate: float, ramp_steps: int) -> float:
    """Linear warm-up of the T-CE drop rate: 0 at step 0, `max_drop_rate` from
    step `ramp_steps` on."""
    if ramp_steps < 1:
        raise ValueError("ramp_steps must be >= 1")
    return max_drop_rate * min(max(step, 0) / ramp_steps, 1.0)


def kept_positives(
    losses: torch.Tensor, is_positive: torch.Tensor, drop_rate: float
) -> torch.Tensor:
    """bool mask, same shape as `losses`: False on the floor(drop_rate * P)
    positives with the largest loss (P = number of positives), True elsewhere.

    Ties are broken by position (the first one in flattened order is dropped).
    """
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError("drop_rate must be in [0, 1)")
    keep = torch.ones_like(is_positive, dtype=torch.bool)
    n_positives = int(is_positive.sum().item())
    # The epsilon keeps 0.2 * 5 from flooring to 0 through float error.
    n_drop = int(math.floor(drop_rate * n_positives + 1e-9))
    if n_drop == 0:
        return keep
    flat_losses = torch.where(is_positive, losses.detach(), float("-inf")).flatten()
    dropped = torch.topk(flat_losses, n_drop, sorted=False).indices
    keep.view(-1)[dropped] = False
    return keep


def truncated_bce(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, drop_rate: float
) -> torch.Tensor:
    """T-CE: mean BCE over the real exposures left after dropping the
    largest-loss positives (negatives are never dropped)."""
    losses = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    is_positive = mask & (labels > 0.5)
    keep = mask & kept_positives(losses, is_positive, drop_rate)
    return (losses * keep).sum() / keep.sum().clamp(min=1)


def reweighting(
    logits: torch.Tensor, labels: torch.Tensor, beta: float, reweight_negatives: bool = False
) -> torch.Tensor:
    """R-CE weights (no gradient): y_hat^beta on positives; on negatives 1, or
    (1 - y_hat)^beta with `reweight_negatives`."""
    predicted = torch.sigmoid(logits.detach())
    positive_weight = predicted.pow(beta)
    negative_weight = (
        (1.0 - predicted).pow(beta) if reweight_negatives else torch.ones_like(predicted)
    )
    return torch.where(labels > 0.5, positive_weight, negative_weight)


def reweighted_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    reweight_negatives: bool = False,
) -> torch.Tensor:
    """R-CE: mean over real exposures of weight * BCE (weights from `reweighting`)."""
    losses = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    weights = reweighting(logits, labels, beta, reweight_negatives)
    return (losses * weights * mask).sum() / mask.sum().clamp(min=1)
