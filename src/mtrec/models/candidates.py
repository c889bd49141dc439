"""A cheap candidate stage for models that cannot score a whole catalogue cheaply.

DIN runs target attention once per (user, item): scoring every item of a 20k
catalogue costs 20k attention passes per user. In production DIN re-ranks a few
hundred candidates from a cheap model; this module is that cheap model.

Item-to-item co-visitation over the train positives: item b is a neighbour of
item a when users clicked b within `window` positives after a (weight 1/d at
distance d) or before it (half that). Each item keeps its `neighbours` strongest
neighbours, weights normalised to sum to 1 per item. A user's candidate score
for item j is the recency-weighted sum, over the last positives h_k of the
history, of w(h_k -> j), plus a small share of item popularity so that a short
or cold history still gets a full candidate list. Items already in the history
are not candidates (they are masked in every ranking downstream).

Everything is in tensors of fixed shape ([n_items + 1, neighbours]), so the
table is saved with the model's weights and moves to its device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

# Weight of the k-th most recent positive of the history (k = 0 the last one).
RECENCY_DECAY = 0.8
# Popularity's share of a candidate score: enough to order items no neighbour reaches.
POPULARITY_SHARE = 1e-3


def covisitation_table(
    log: pd.DataFrame, n_items: int, neighbours: int, window: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(neighbour items [n_items + 1, neighbours] long, their weights [same] float,
    popularity [n_items + 1] float) from a log sorted by user then event order
    (the processed splits' contract); only rows with response 1 count. Row 0
    (padding) has no neighbours; unused slots hold item 0 with weight 0."""
    import scipy.sparse as sp  # here: only fitting needs it, not loading or serving

    if neighbours < 1 or window < 1:
        raise ValueError(f"neighbours and window must be >= 1, got {neighbours}, {window}")
    positives = log[log["response"] == 1]
    users = positives["user_idx"].to_numpy()
    items = positives["item_idx"].to_numpy(np.int64)
    if np.any(np.diff(users) < 0):
        raise ValueError("the log must be sorted by user_idx (then event order)")
    sources, targets, weights = [], [], []
    for distance in range(1, window + 1):
        same_user = users[distance:] == users[:-distance]
        earlier, later = items[:-distance][same_user], items[distance:][same_user]
        sources += [earlier, later]
        targets += [later, earlier]
        weights += [np.full(len(earlier), 1.0 / distance), np.full(len(later), 0.5 / distance)]
    size = n_items + 1
    counts = sp.coo_matrix(
        (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
        shape=(size, size),
    ).tocsr()
    counts.setdiag(0)  # an item is not its own candidate
    counts.eliminate_zeros()
    table = np.zeros((size, neighbours), dtype=np.int64)
    table_weights = np.zeros((size, neighbours), dtype=np.float32)
    for item in range(1, size):
        begin, end = counts.indptr[item], counts.indptr[item + 1]
        if begin == end:
            continue
        row_items, row_weights = counts.indices[begin:end], counts.data[begin:end]
        # Strongest first; ties by item index, so the table is deterministic.
        order = np.lexsort((row_items, -row_weights))[:neighbours]
        row_items, row_weights = row_items[order], row_weights[order]
        table[item, : len(row_items)] = row_items
        table_weights[item, : len(row_items)] = row_weights / row_weights.sum()
    popularity = np.bincount(items, minlength=size).astype(np.float32)
    popularity[0] = 0.0
    popularity /= max(popularity.max(), 1.0)
    return torch.from_numpy(table), torch.from_numpy(table_weights), torch.from_numpy(popularity)


def candidate_scores(
    history: torch.Tensor,
    table: torch.Tensor,
    table_weights: torch.Tensor,
    popularity: torch.Tensor,
) -> torch.Tensor:
    """history [B, L] right-padded -> candidate scores [B, n_items + 1]: column 0
    and the history's own items are -inf."""
    batch, width = history.shape
    lengths = (history > 0).sum(dim=1, keepdim=True)
    # Age of each position from the end of its row: 0 for the last positive.
    age = lengths - 1 - torch.arange(width, device=history.device)
    decay = torch.where(
        age >= 0, RECENCY_DECAY ** age.clamp(min=0).float(), torch.zeros((), device=age.device)
    )  # [B, L]; 0 at padding
    scores = POPULARITY_SHARE * popularity.expand(batch, -1).clone()
    contributions = (table_weights[history] * decay.unsqueeze(-1)).reshape(batch, -1)
    scores.scatter_add_(1, table[history].reshape(batch, -1), contributions)
    scores[:, 0] = float("-inf")
    scores.scatter_(1, history, float("-inf"))  # padding (0) is -inf already
    return scores
