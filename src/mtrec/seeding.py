"""The one place global random number generators are seeded."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, *, python: bool = True) -> None:
    """Seed Python's `random` (unless `python=False`), numpy's global generator
    (seed mod 2**32) and torch's CPU and CUDA generators. Seeding draws nothing,
    so the order of the three does not matter. The reward model passes
    `python=False`: it never seeded `random`, and seeding it now would change the
    state other code in the same process sees."""
    if python:
        random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
