"""QR-IQL and the plain chi^2 IQ-Learn objective (METHOD.md section 2), as pure tensor functions.

Shapes: B transitions, A = 2 actions, N quantiles. `quantiles` are the
non-crossing locations lambda(s) [B, A, N]; `next_quantiles` the same for s'.
The quantile arithmetic they share with the read-out (Q, V, the midpoints tau_k)
lives in `mtrec.reward.inference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtrec.reward.inference import quantile_midpoints, soft_value


def soft_value_per_quantile(quantiles: torch.Tensor) -> torch.Tensor:
    """V_k(s) = logsumexp_a lambda_k(s, a): [B, A, N] -> [B, N]."""
    return torch.logsumexp(quantiles, dim=-2)


def quantile_huber(u: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """QR-DQN's rho^kappa_tau(u) = |tau - 1{u < 0}| * Huber_kappa(u) / kappa.

    u: [B, N(k), N(j)] target minus prediction; taus: [N(k)], broadcast over j.
    """
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u.pow(2), kappa * (abs_u - 0.5 * kappa))
    weight = (taus.view(1, -1, 1) - (u.detach() < 0).to(u.dtype)).abs()
    return weight * huber / kappa


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    td: torch.Tensor  # L_QR (or the squared chi^2 term for -IRL)
    value: torch.Tensor  # L_V = E[V(s) - gamma V(s')]
    # The behaviour term, when the config weighs one in (`RewardConfig.behaviour_weight`).
    behaviour: torch.Tensor | None = None


def _masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def _taken(quantiles: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """lambda(s, a) for the logged action: [B, A, N], [B] -> [B, N]."""
    index = actions.long().view(-1, 1, 1).expand(-1, 1, quantiles.shape[-1])
    return quantiles.gather(1, index).squeeze(1)


def qr_iql_loss(
    quantiles: torch.Tensor,
    actions: torch.Tensor,
    next_quantiles: torch.Tensor,
    terminal: torch.Tensor,
    *,
    alpha: float,
    gamma: float,
    kappa: float = 1.0,
    weights: torch.Tensor | None = None,
    target_quantiles: torch.Tensor | None = None,
) -> LossParts:
    """L = L_QR + L_V (METHOD.md section 2).

    u_kj = (2 alpha + gamma V_j(s')) - lambda_k(s, a); L_QR = E[sum_k mean_j rho(u_kj)];
    L_V = E[V(s) - gamma V(s')]. V(s') = V_j(s') = 0 at terminal transitions.
    `target_quantiles` (e.g. from a Polyak target network, or `next_quantiles`
    detached) feed the TD target; by default the target is `next_quantiles`
    with its gradient. `weights` [B] (0/1) select which transitions count.
    """
    alive = (~terminal.bool()).to(quantiles.dtype)
    target_source = next_quantiles if target_quantiles is None else target_quantiles
    next_value_per_quantile = soft_value_per_quantile(target_source) * alive.unsqueeze(-1)  # [B, N]
    target = 2 * alpha + gamma * next_value_per_quantile  # [B, N(j)]
    predicted = _taken(quantiles, actions)  # [B, N(k)]
    u = target.unsqueeze(1) - predicted.unsqueeze(2)  # [B, N(k), N(j)]
    taus = quantile_midpoints(quantiles.shape[-1], device=quantiles.device).to(quantiles.dtype)
    per_transition = quantile_huber(u, taus, kappa).mean(dim=2).sum(dim=1)  # [B]
    td = _masked_mean(per_transition, weights)
    value = _masked_mean(
        soft_value(quantiles) - gamma * soft_value(next_quantiles) * alive, weights
    )
    return LossParts(total=td + value, td=td, value=value)


def iq_learn_chi2_loss(
    quantiles: torch.Tensor,
    actions: torch.Tensor,
    next_quantiles: torch.Tensor,
    terminal: torch.Tensor,
    *,
    alpha: float,
    gamma: float,
    weights: torch.Tensor | None = None,
    target_quantiles: torch.Tensor | None = None,
) -> LossParts:
    """The "-IRL" ablation: plain chi^2 IQ-Learn with N = 1.

    Minimises -E[psi(Q(s,a) - gamma V(s'))] + E[V(s) - gamma V(s')] with
    psi(x) = x - x^2 / (4 alpha), i.e. -psi(x) = (x - 2 alpha)^2 / (4 alpha) - alpha.
    """
    if quantiles.shape[-1] != 1:
        raise ValueError(f"the -IRL objective uses N = 1 quantile, got {quantiles.shape[-1]}")
    alive = (~terminal.bool()).to(quantiles.dtype)
    target_source = next_quantiles if target_quantiles is None else target_quantiles
    q_taken = _taken(quantiles, actions).squeeze(-1)  # [B]
    x = q_taken - gamma * soft_value(target_source) * alive
    td = _masked_mean((x - 2 * alpha).pow(2) / (4 * alpha) - alpha, weights)
    value = _masked_mean(
        soft_value(quantiles) - gamma * soft_value(next_quantiles) * alive, weights
    )
    return LossParts(total=td + value, td=td, value=value)
