"""Hand-computed cases for the T-CE, R-CE and not-to-recommend losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mtrec.baselines.denoising import (
    drop_rate_at,
    kept_positives,
    reweighted_bce,
    reweighting,
    truncated_bce,
)
from mtrec.baselines.not_to_recommend import (
    log_one_minus_sigmoid,
    log_one_minus_softmax,
    negative_feedback_mask,
    not_to_recommend_bce,
)


def _bce_positive(logit: float) -> float:
    return math.log1p(math.exp(-logit))


def test_drop_rate_rises_linearly_then_stays():
    assert drop_rate_at(0, 0.2, 100) == 0.0
    assert drop_rate_at(50, 0.2, 100) == pytest.approx(0.1)
    assert drop_rate_at(100, 0.2, 100) == pytest.approx(0.2)
    assert drop_rate_at(10_000, 0.2, 100) == pytest.approx(0.2)


def test_five_positive_losses_at_rate_02_drop_exactly_the_largest():
    losses = torch.tensor([0.3, 2.5, 0.1, 0.9, 1.7])
    keep = kept_positives(losses, torch.ones(5, dtype=torch.bool), 0.2)
    assert keep.tolist() == [True, False, True, True, True]
    # Rate 0.39 still drops floor(1.95) = 1; rate 0.4 drops two.
    assert kept_positives(losses, torch.ones(5, dtype=torch.bool), 0.39).sum() == 4
    assert kept_positives(losses, torch.ones(5, dtype=torch.bool), 0.4).tolist() == [
        True,
        False,
        True,
        True,
        False,
    ]


def test_truncation_never_drops_negatives_and_averages_the_rest():
    # Positives with logits -3 (loss 3.049), 2, 1, 0, 4; one negative with a huge loss.
    logits = torch.tensor([[-3.0, 2.0, 1.0, 0.0, 4.0, 6.0]])
    labels = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    mask = torch.ones_like(labels, dtype=torch.bool)
    kept = [_bce_positive(x) for x in (2.0, 1.0, 0.0, 4.0)] + [_bce_positive(6.0) + 6.0]
    expected = sum(kept) / 5
    assert truncated_bce(logits, labels, mask, 0.2).item() == pytest.approx(expected, rel=1e-6)
    # Rate 0: plain mean BCE over real exposures; padding slots never count.
    mask_padded = mask.clone()
    mask_padded[0, 0] = False
    plain = F.binary_cross_entropy_with_logits(logits[0, 1:], labels[0, 1:]).item()
    assert truncated_bce(logits, labels, mask_padded, 0.0).item() == pytest.approx(plain, rel=1e-6)


def test_rce_weights_are_prediction_to_the_beta_on_positives():
    logits = torch.tensor([0.0, 2.0, -1.0, 0.5])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    weights = reweighting(logits, labels, beta=0.25)
    expected_positive = [0.5**0.25, torch.sigmoid(torch.tensor(2.0)).item() ** 0.25]
    assert weights[:2].tolist() == pytest.approx(expected_positive, rel=1e-6)
    assert weights[2:].tolist() == [1.0, 1.0]
    weights_neg = reweighting(logits, labels, beta=0.25, reweight_negatives=True)
    expected_negative = [(1 - torch.sigmoid(torch.tensor(x)).item()) ** 0.25 for x in (-1.0, 0.5)]
    assert weights_neg[2:].tolist() == pytest.approx(expected_negative, rel=1e-6)


def test_rce_loss_and_its_weights_carry_no_gradient():
    logits = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    labels = torch.tensor([1.0, 1.0, 0.0])
    mask = torch.tensor([True, True, True])
    loss = reweighted_bce(logits, labels, mask, beta=0.5)
    bce = [math.log(2), _bce_positive(2.0), _bce_positive(1.0)]
    w = [0.5**0.5, torch.sigmoid(torch.tensor(2.0)).item() ** 0.5, 1.0]
    assert loss.item() == pytest.approx(sum(a * b for a, b in zip(bce, w, strict=True)) / 3)
    loss.backward()
    # d/dz of w * BCE with w detached: w * (sigmoid(z) - y) / n.
    assert logits.grad[0].item() == pytest.approx(w[0] * (0.5 - 1) / 3, rel=1e-6)
    # beta = 0 is plain BCE.
    plain = F.binary_cross_entropy_with_logits(logits.detach(), labels).item()
    assert reweighted_bce(logits.detach(), labels, mask, 0.0).item() == pytest.approx(plain)


def test_negative_feedback_is_a_low_rated_positive_or_a_skip_on_request():
    response = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    rating = torch.tensor([1.0, 2.0, 4.0, float("nan"), float("nan")])
    mask = torch.tensor([True, True, True, True, False])
    assert negative_feedback_mask(response, rating, mask, 2.0).tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]
    with_skips = negative_feedback_mask(response, rating, mask, 2.0, include_skips=True)
    assert with_skips.tolist() == [True, True, False, True, False]


def test_log_one_minus_probabilities_match_direct_computation():
    logits = torch.tensor([[0.0, 1.0, -2.0, 0.5]])
    probs = torch.softmax(logits, dim=-1)
    value = log_one_minus_softmax(logits, torch.tensor([1]))
    assert value.item() == pytest.approx(math.log(1 - probs[0, 1].item()), rel=1e-6)
    # Column 0 as padding (-inf) is fine.
    padded = torch.tensor([[float("-inf"), 1.0, 1.0]])
    assert log_one_minus_softmax(padded, torch.tensor([2])).item() == pytest.approx(math.log(0.5))
    assert log_one_minus_sigmoid(torch.tensor(0.3)).item() == pytest.approx(
        math.log(1 - 1 / (1 + math.exp(-0.3)))
    )


def test_ntr_with_sigmoid_and_no_positive_label_equals_relabelling():
    logits = torch.tensor([[1.0, -0.5, 2.0, 0.2]])
    labels = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, True, False]])
    disliked = torch.tensor([[False, True, False, False]])
    loss = not_to_recommend_bce(
        logits, labels, mask, disliked, log_one_minus_sigmoid(logits), weight=1.0
    )
    relabelled = torch.tensor([1.0, 0.0, 0.0])
    expected = F.binary_cross_entropy_with_logits(logits[0, :3], relabelled).item()
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_ntr_keeping_the_positive_label_adds_the_weighted_term():
    logits = torch.tensor([1.0, -0.5])
    labels = torch.tensor([1.0, 1.0])
    mask = torch.tensor([True, True])
    disliked = torch.tensor([False, True])
    log_not = torch.tensor([0.0, math.log(0.8)])
    loss = not_to_recommend_bce(
        logits, labels, mask, disliked, log_not, weight=0.5, keep_positive_label=True
    )
    expected = (_bce_positive(1.0) + _bce_positive(-0.5) - 0.5 * math.log(0.8)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
