"""The evaluation's on-device target ranks equal the reference `metrics.target_ranks`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtrec.evaluation.evaluate import target_ranks_on_device
from mtrec.evaluation.metrics import target_ranks


@st.composite
def ranking_cases(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    # Few distinct values, so ties are common; -inf too (e.g. DIN's padding column).
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0])
    scores = np.array(
        draw(st.lists(values, min_size=n_users * (n_items + 1), max_size=n_users * (n_items + 1))),
        dtype=np.float32,
    ).reshape(n_users, n_items + 1)
    targets = np.array(draw(st.lists(st.integers(1, n_items), min_size=n_users, max_size=n_users)))
    mask = np.array(
        draw(
            st.lists(
                st.booleans(), min_size=n_users * (n_items + 1), max_size=n_users * (n_items + 1)
            )
        )
    ).reshape(n_users, n_items + 1)
    ties = draw(st.sampled_from(["pessimistic", "average", "optimistic"]))
    return scores, targets, mask, ties


@settings(max_examples=300, deadline=None)
@given(ranking_cases())
def test_on_device_ranks_equal_the_reference(case):
    scores, targets, mask, ties = case
    expected = target_ranks(scores, targets, mask, ties=ties)
    seen = tuple(torch.from_numpy(index) for index in np.nonzero(mask))
    got = target_ranks_on_device(
        torch.from_numpy(scores.copy()), torch.from_numpy(targets), seen, ties
    )
    np.testing.assert_array_equal(got, expected)


def test_a_nan_target_score_and_an_unknown_tie_rule_are_refused():
    scores = torch.tensor([[0.0, float("nan"), 1.0]])
    no_seen = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        target_ranks_on_device(scores.clone(), torch.tensor([1]), no_seen)
    with pytest.raises(ValueError, match="ties"):
        target_ranks_on_device(scores.clone(), torch.tensor([2]), no_seen, ties="random")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_device_ranks_on_cuda_equal_the_reference():
    generator = np.random.default_rng(0)
    scores = generator.integers(0, 5, size=(64, 301)).astype(np.float32)
    targets = generator.integers(1, 301, size=64)
    mask = generator.random((64, 301)) < 0.2
    seen = tuple(torch.from_numpy(index) for index in np.nonzero(mask))
    got = target_ranks_on_device(torch.from_numpy(scores).cuda(), torch.from_numpy(targets), seen)
    np.testing.assert_array_equal(got, target_ranks(scores, targets, mask))
