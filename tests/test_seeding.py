"""The one seeder (`mtrec.seeding.seed_everything`)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mtrec.seeding import seed_everything


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_the_same_seed_gives_the_same_draws(seed):
    seed_everything(seed)
    first = _draws()
    seed_everything(seed)
    assert _draws() == first
    seed_everything(seed + 1)
    assert _draws() != first


@pytest.mark.parametrize("seed", [3, 2**33 + 5])
def test_numpy_and_torch_states_do_not_depend_on_the_seeding_order(seed):
    # The reward model used to seed torch before numpy; the order is not a state.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    np.random.rand(), torch.rand(3)  # move both away
    seed_everything(seed, python=False)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


def test_python_false_leaves_pythons_random_alone():
    random.seed(123)
    random.random()
    state = random.getstate()
    seed_everything(5, python=False)
    assert random.getstate() == state
    seed_everything(5)
    assert random.getstate() != state
