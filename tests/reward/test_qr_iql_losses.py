"""QR-IQL and -IRL losses pinned on a hand-computed toy case.

Two transitions, N = 2 (tau = 0.25, 0.75), alpha = 0.5, gamma = 0.5:
    s1 -> s2, action 1, lambda(s1) = [[0, 1], [1, 2]]
    s2 terminal, action 0, lambda(s2) = [[0, 0], [0, 0]]
"""

from __future__ import annotations

import math

import pytest
import torch

from mtrec.reward.inference import non_crossing, q_values, quantile_midpoints, soft_value
from mtrec.reward.losses import (
    iq_learn_chi2_loss,
    qr_iql_loss,
    quantile_huber,
    soft_value_per_quantile,
)

LN2 = math.log(2.0)


def toy(n_quantiles: int = 2):
    if n_quantiles == 2:
        s1 = [[0.0, 1.0], [1.0, 2.0]]
        s2 = [[0.0, 0.0], [0.0, 0.0]]
    else:
        s1 = [[0.0], [1.0]]
        s2 = [[0.0], [0.0]]
    quantiles = torch.tensor([s1, s2])
    next_quantiles = torch.tensor([s2, s2])  # the second next state is never used (terminal)
    actions = torch.tensor([1, 0])
    terminal = torch.tensor([False, True])
    return quantiles, actions, next_quantiles, terminal


def test_quantile_midpoints():
    assert quantile_midpoints(2).tolist() == [0.25, 0.75]
    assert torch.allclose(quantile_midpoints(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_values_on_the_toy_case():
    quantiles, *_ = toy()
    assert torch.allclose(q_values(quantiles), torch.tensor([[0.5, 1.5], [0.0, 0.0]]))
    expected_v1 = 1.5 + math.log(1 + math.exp(-1.0))
    assert torch.allclose(soft_value(quantiles), torch.tensor([expected_v1, LN2]))
    per_quantile = soft_value_per_quantile(quantiles)
    assert torch.allclose(
        per_quantile[0],
        torch.tensor([1 + math.log(1 + math.exp(-1)), 2 + math.log(1 + math.exp(-1))]),
    )
    assert torch.allclose(per_quantile[1], torch.tensor([LN2, LN2]))


def test_qr_iql_loss_hand_computed():
    quantiles, actions, next_quantiles, terminal = toy()
    parts = qr_iql_loss(quantiles, actions, next_quantiles, terminal, alpha=0.5, gamma=0.5)
    # Transition 1: target_j = 2*0.5 + 0.5*ln2 for both j; lambda(s1, 1) = [1, 2].
    target = 1 + 0.5 * LN2
    u1, u2 = target - 1.0, target - 2.0  # 0.3466 (>0), -0.6534 (<0); both |u| <= 1
    rho1 = 0.25 * 0.5 * u1**2  # tau 0.25, u > 0
    rho2 = abs(0.75 - 1.0) * 0.5 * u2**2  # tau 0.75, u < 0
    first = rho1 + rho2
    # Transition 2 is terminal: target = 1, lambda(s2, 0) = [0, 0], u = 1.
    second = 0.25 * 0.5 + 0.75 * 0.5
    assert parts.td.item() == pytest.approx((first + second) / 2, abs=1e-6)
    v1 = 1.5 + math.log(1 + math.exp(-1.0))
    value = ((v1 - 0.5 * LN2) + LN2) / 2
    assert parts.value.item() == pytest.approx(value, abs=1e-6)
    assert parts.total.item() == pytest.approx((first + second) / 2 + value, abs=1e-6)
    assert parts.total.item() == pytest.approx(1.3641103, abs=1e-6)


def test_qr_iql_loss_weights_select_transitions():
    quantiles, actions, next_quantiles, terminal = toy()
    only_second = qr_iql_loss(
        quantiles,
        actions,
        next_quantiles,
        terminal,
        alpha=0.5,
        gamma=0.5,
        weights=torch.tensor([0.0, 1.0]),
    )
    assert only_second.td.item() == pytest.approx(0.5, abs=1e-6)
    assert only_second.value.item() == pytest.approx(LN2, abs=1e-6)


def test_terminal_next_state_contributes_nothing():
    quantiles, actions, next_quantiles, terminal = toy()
    changed = next_quantiles.clone()
    changed[1] = 100.0  # next state of the terminal transition
    a = qr_iql_loss(quantiles, actions, next_quantiles, terminal, alpha=0.5, gamma=0.5)
    b = qr_iql_loss(quantiles, actions, changed, terminal, alpha=0.5, gamma=0.5)
    assert a.total.item() == pytest.approx(b.total.item())
    # ... while changing a live next state does change the loss.
    changed[0] = 100.0
    c = qr_iql_loss(quantiles, actions, changed, terminal, alpha=0.5, gamma=0.5)
    assert c.total.item() != pytest.approx(a.total.item())


def test_target_quantiles_stop_the_gradient():
    quantiles, actions, next_quantiles, terminal = toy()
    quantiles.requires_grad_(True)
    following = next_quantiles.clone().requires_grad_(True)
    loss = qr_iql_loss(
        quantiles,
        actions,
        following,
        terminal,
        alpha=0.5,
        gamma=0.5,
        target_quantiles=following.detach(),
    )
    loss.td.backward()
    assert following.grad is None or torch.all(following.grad == 0)
    following.grad = None
    qr_iql_loss(quantiles, actions, following, terminal, alpha=0.5, gamma=0.5).td.backward()
    assert following.grad is not None and following.grad.abs().sum() > 0


def test_iq_learn_chi2_loss_hand_computed():
    quantiles, actions, next_quantiles, terminal = toy(n_quantiles=1)
    parts = iq_learn_chi2_loss(quantiles, actions, next_quantiles, terminal, alpha=0.5, gamma=0.5)
    # -psi(x) = (x - 1)^2 / 2 - 0.5; x1 = 1 - 0.5 ln2, x2 = 0 (terminal).
    x1 = 1 - 0.5 * LN2
    td = (((x1 - 1) ** 2 / 2 - 0.5) + ((0 - 1) ** 2 / 2 - 0.5)) / 2
    v1 = math.log(1 + math.e)
    value = ((v1 - 0.5 * LN2) + LN2) / 2
    assert parts.td.item() == pytest.approx(td, abs=1e-6)
    assert parts.value.item() == pytest.approx(value, abs=1e-6)
    assert parts.total.item() == pytest.approx(0.6099459, abs=1e-6)


def test_iq_learn_needs_one_quantile():
    quantiles, actions, next_quantiles, terminal = toy()
    with pytest.raises(ValueError, match="N = 1"):
        iq_learn_chi2_loss(quantiles, actions, next_quantiles, terminal, alpha=0.5, gamma=0.5)


def test_quantile_huber_is_linear_beyond_kappa():
    taus = torch.tensor([0.5])
    small = quantile_huber(torch.tensor([[[0.5]]]), taus, kappa=1.0)
    large = quantile_huber(torch.tensor([[[-3.0]]]), taus, kappa=1.0)
    assert small.item() == pytest.approx(0.5 * 0.5 * 0.25)
    assert large.item() == pytest.approx(0.5 * (3.0 - 0.5))


def test_non_crossing_quantiles_are_sorted():
    raw = torch.randn(64, 2, 10) * 5
    locations = non_crossing(raw)
    assert torch.all(locations[..., 1:] >= locations[..., :-1])
    assert torch.equal(locations[..., 0], raw[..., 0])
