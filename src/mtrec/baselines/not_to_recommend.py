"""Not-to-recommend loss (Wang et al., RecSys 2023, arXiv 2308.12256).

For an exposure with negative feedback the model is asked NOT to recommend
the item: the loss adds `-log(1 - p(i|h))`. Here negative feedback is a
positive (a click / a rating) whose satisfaction signal is low, so this
baseline TRAINS ON THE SATISFACTION SIGNAL, as the paper does; MTRec does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_feedback_mask(
    response: torch.Tensor,
    signal: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
    include_skips: bool = False,
) -> torch.Tensor:
    """bool [same shape]: real exposures that are positives with a known signal
    <= threshold (NaN is unknown: not negative feedback), plus every response-0
    exposure when `include_skips`."""
    disliked = (response > 0.5) & ~torch.isnan(signal) & (signal <= threshold)
    if include_skips:
        disliked = disliked | (response < 0.5)
    return disliked & mask


def log_one_minus_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - sigmoid(z)) = -softplus(z), stable for large |z|."""
    return -F.softplus(logits)


def log_one_minus_softmax(catalogue_logits: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(z)[i]) over the catalogue, stable.

    catalogue_logits [N, C] (column 0 may be -inf), items [N] -> [N]:
    log(sum_{j != i} exp z_j) - logsumexp(z).
    """
    total = torch.logsumexp(catalogue_logits, dim=-1)
    others = catalogue_logits.scatter(-1, items.unsqueeze(-1), float("-inf"))
    return torch.logsumexp(others, dim=-1) - total


def not_to_recommend_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    negative_feedback: torch.Tensor,
    not_to_recommend_log_prob: torch.Tensor,
    weight: float,
    keep_positive_label: bool = False,
) -> torch.Tensor:
    """Per real exposure: its BCE term (dropped for negative-feedback positives
    unless `keep_positive_label`) plus, on negative feedback,
    `-weight * log(1 - p)`; the sum is divided by the number of real exposures.

    `not_to_recommend_log_prob` holds log(1 - p(i|h)) on the negative-feedback
    slots (same shape as logits; other slots are ignored).
    """
    bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    counts_bce = mask & (keep_positive_label | ~negative_feedback | (labels < 0.5))
    ntr = torch.where(negative_feedback, -not_to_recommend_log_prob, 0.0)
    total = (bce * counts_bce).sum() + weight * ntr.sum()
    return total / mask.sum().clamp(min=1)
