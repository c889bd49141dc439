"""The mental reward read-out as pure inference (METHOD.md section 2).

No training code and no log handling: tensors in, tensors out. The
pipeline's read-out (`mtrec.reward.readout`) and the service
(`mtrec.serving.runtime`) both compute rewards with `expected_reward`, the
losses (`mtrec.reward.losses`) and the Q-network's head
(`mtrec.reward.qnetwork`) use its quantile arithmetic.

For a state s = (h, i) and action a, s'_a is the state that follows a:
h'_1 = h + [i] (the click enters the history), h'_0 = h. The next displayed
item i' is the user's actual next item for the logged action a = a_t and is
unknown for the other action, so its value is an expectation over i' drawn
from the log's display distribution:

    r_k(s, a) = lambda_k(s, a) - gamma E_{i'}[V(h'_a, i')]    (V = 0 at terminal states)
    r(s, a)   = Q(s, a)       - gamma E_{i'}[V(h'_a, i')]
    CVaR_q    = mean of the lowest q-mass of the N equally weighted r_k,
                the boundary quantile weighted by its fractional share

In the leave-aware MDP (four joint actions `response + 2 * leave`, see
`mtrec.reward.mdp`) the user decides to go on or to leave once the response's
outcome is known, so that choice is where satisfaction shows. The reward of a
response c is the reward of going on after it, measured from leaving after it
(leaving is terminal: its reward is its Q, the reference):

    r_k(s, c) = lambda_k(s, (c, stay)) - gamma E_{i'}[V(h'_c, i')] - Q(s, (c, leave))

For the logged response of a user who stayed, i' is the actual next item;
otherwise (the other response, a user who left, a service before the user
acts) it is drawn as above.

Shapes: R rows, L history slots (oldest first, right-padded with 0),
M next-item samples, A actions (2, or 4 leave-aware), N quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# The actions of the user-centric MDP: 0 = skip, 1 = click.
ACTIONS = (0, 1)


# --- quantile arithmetic -------------------------------------------------------


def non_crossing(raw: torch.Tensor) -> torch.Tensor:
    """Monotone quantile locations from raw head outputs [..., N].

    The first location is free; each next one adds a softplus increment, so
    lambda_1 <= lambda_2 <= ... <= lambda_N by construction.
    """
    first = raw[..., :1]
    increments = F.softplus(raw[..., 1:])
    return torch.cat([first, first + torch.cumsum(increments, dim=-1)], dim=-1)


def quantile_midpoints(n_quantiles: int, device: torch.device | str | None = None) -> torch.Tensor:
    """tau_k = (2k - 1) / 2N for k = 1..N."""
    k = torch.arange(1, n_quantiles + 1, dtype=torch.float32, device=device)
    return (2 * k - 1) / (2 * n_quantiles)


def q_values(quantiles: torch.Tensor) -> torch.Tensor:
    """Q(s, a) = mean_k lambda_k(s, a): [B, A, N] -> [B, A]."""
    return quantiles.mean(dim=-1)


def soft_value(quantiles: torch.Tensor) -> torch.Tensor:
    """V(s) = logsumexp_a Q(s, a): [B, A, N] -> [B]."""
    return torch.logsumexp(q_values(quantiles), dim=-1)


def leave_aware(quantiles: torch.Tensor) -> bool:
    """Whether quantiles [B, A, N] come from the four-action leave-aware MDP."""
    if quantiles.shape[-2] not in (2, 4):
        raise ValueError(f"expected 2 or 4 actions, got {quantiles.shape[-2]}")
    return quantiles.shape[-2] == 4


def response_q_values(quantiles: torch.Tensor) -> torch.Tensor:
    """Q(s, c) of the two responses [B, A, N] -> [B, 2]: Q itself with two
    actions; logsumexp over stay/leave of Q(s, (c, .)) in the leave-aware MDP
    (the soft value of responding c)."""
    q = q_values(quantiles)
    if not leave_aware(quantiles):
        return q
    return torch.logsumexp(torch.stack([q[:, :2], q[:, 2:]], dim=-1), dim=-1)


def stay_advantage(quantiles: torch.Tensor) -> torch.Tensor:
    """Q(s, (c, stay)) - Q(s, (c, leave)) for c = skip, click: [B, 4, N] -> [B, 2]
    (the users' log-odds of going on after responding c, under the soft-Q policy)."""
    q = q_values(quantiles)
    return q[:, :2] - q[:, 2:]


def response_reward(
    quantiles: torch.Tensor,
    responses: Sequence[int],
    next_values: torch.Tensor,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward quantiles [R, C, N] and mean [R, C] of the responses `responses`
    (C of them, each 0 or 1). quantiles lambda(s) [R, A, N]; next_values [R, C]:
    the value each response's reward subtracts (in the leave-aware MDP, that of
    the state after responding c and staying).

    Two actions: r_k(s, c) = lambda_k(s, c) - gamma v_c. Leave-aware: the reward
    of going on after c, measured from leaving after c (leaving is terminal, so
    its reward is its Q): r_k(s, c) = lambda_k(s, (c, stay)) - gamma v_c -
    Q(s, (c, leave))."""
    picked = list(responses)
    reward_quantiles = quantiles[:, picked] - gamma * next_values.unsqueeze(-1)
    if leave_aware(quantiles):
        leave = q_values(quantiles[:, [c + 2 for c in picked]])  # [R, C]
        reward_quantiles = reward_quantiles - leave.unsqueeze(-1)
    return reward_quantiles, reward_quantiles.mean(dim=-1)


# --- the read-out ----------------------------------------------------------------


def cvar_of_quantiles(quantiles: torch.Tensor, level: float) -> torch.Tensor:
    """Lower-tail CVaR at `level` of N equally weighted atoms [..., N] -> [...].

    The lowest floor(level N) atoms count in full and the next one by the
    remaining share, all divided by `level`: N = 5, level 0.3 weighs the lowest
    atom 0.2 and the second 0.1 (not 40% of the mass, as averaging ceil(level N)
    atoms would). level = 1 is the mean.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"CVaR level must be in (0, 1], got {level}")
    n = quantiles.shape[-1]
    lower_edges = torch.arange(n, dtype=quantiles.dtype, device=quantiles.device) / n
    mass = (level - lower_edges).clamp(min=0.0, max=1.0 / n)  # [N]: each atom's share below level
    ordered = torch.sort(quantiles, dim=-1).values
    return (ordered * mass).sum(dim=-1) / mass.sum()


def append_item(
    positives: torch.Tensor, lengths: torch.Tensor, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """h + [i], keeping the last L: positives [..., L], lengths [...], items [...]
    -> (positives [..., L], lengths [...]). A full window drops its oldest item."""
    max_history = positives.shape[-1]
    full = lengths >= max_history
    shifted = torch.where(full.unsqueeze(-1), positives.roll(-1, dims=-1), positives)
    slot = torch.where(full, torch.full_like(lengths, max_history - 1), lengths)
    shifted = shifted.scatter(-1, slot.unsqueeze(-1), items.unsqueeze(-1))
    return shifted, slot + 1


@torch.no_grad()
def mean_soft_value(
    network: torch.nn.Module,
    positives: torch.Tensor,
    lengths: torch.Tensor,
    next_items: torch.Tensor,
) -> torch.Tensor:
    """E_{i'}[V(h, i')] over the sampled i': positives [R, L], lengths [R],
    next_items [R, M] -> [R]. `network(positives, items, state_index)` returns
    quantiles [R, M, 2, N] (a `RewardQNetwork`)."""
    state_index = lengths.unsqueeze(1).expand_as(next_items)
    quantiles = network(positives, next_items, state_index)  # [R, M, 2, N]
    return soft_value(quantiles.flatten(0, 1)).view_as(next_items).mean(dim=1)


def sample_next_items(
    distribution: torch.Tensor, rows: int, samples: int, generator: torch.Generator
) -> torch.Tensor:
    """`samples` next displayed items i' for each of `rows` states, drawn with
    replacement from `distribution` [n_items + 1] (index 0 = 0): [rows, samples]."""
    draw = torch.multinomial(distribution, rows * samples, replacement=True, generator=generator)
    return draw.view(rows, samples)


@torch.no_grad()
def expected_next_values(
    network: torch.nn.Module,
    positives: torch.Tensor,
    lengths: torch.Tensor,
    items: torch.Tensor,
    next_items: torch.Tensor,
    actions: Sequence[int] = ACTIONS,
) -> torch.Tensor:
    """E_{i'}[V(h'_a, i')] for each a of `actions` (h'_0 = h, h'_1 = h + [i]); no
    terminal mask.

    positives [R, L], lengths [R], items [R] (the item i of each state),
    next_items [R, M] -> [R, len(actions)].
    """
    next_history = {0: (positives, lengths)}
    if 1 in actions:
        next_history[1] = append_item(positives, lengths, items)
    return torch.stack(
        [mean_soft_value(network, *next_history[a], next_items) for a in actions], dim=1
    )


@torch.no_grad()
def expected_reward(
    network: torch.nn.Module,
    positives: torch.Tensor,
    lengths: torch.Tensor,
    items: torch.Tensor,
    next_items: torch.Tensor,
    gamma: float,
    cvar_level: float,
    quantiles: torch.Tensor | None = None,
    actions: Sequence[int] = ACTIONS,
) -> dict[str, torch.Tensor]:
    """The read-out a service can compute before the user acts, a function of
    (s, a) alone: r_k(s, a) = lambda_k(s, a) - gamma E_{i'}[V(h'_a, i')] with i'
    from `next_items`, whatever happens next (no terminal mask).

    positives [R, L] (L: the Q-network's `max_history`, or any width above the
    longest history: h + [i] keeps the last L), lengths [R], items [R],
    next_items [R, M]; `quantiles` lambda(s) [R, A, N] when the caller already
    has them (else one forward pass here). `actions` are responses (0 skip,
    1 click); a leave-aware network's reward of a response is that of staying
    after it, measured from leaving (module docstring). Returns, for the
    C = len(actions) responses: quantiles [R, C, N], mean [R, C], cvar [R, C]
    and next_values [R, C] (the E_{i'}[V(h'_a, i')] subtracted).
    """
    if quantiles is None:
        state_index = lengths.unsqueeze(1)
        quantiles = network(positives, items.unsqueeze(1), state_index)[:, 0]  # [R, A, N]
    next_values = expected_next_values(network, positives, lengths, items, next_items, actions)
    reward_quantiles, mean = response_reward(quantiles, actions, next_values, gamma)
    return {
        "quantiles": reward_quantiles,
        "mean": mean,
        "cvar": cvar_of_quantiles(reward_quantiles, cvar_level),
        "next_values": next_values,
    }


def next_state_values(
    expected_next: torch.Tensor,
    observed_next_value: torch.Tensor,
    actions: torch.Tensor,
    terminal: torch.Tensor,
) -> torch.Tensor:
    """The value each action's reward subtracts, [R, 2]: the observed next state's
    V for the logged action, E_{i'}[V(h'_a, i')] for the other, 0 at terminal rows.

    expected_next [R, 2], observed_next_value [R] (V(s'_{a_t}); anything at
    terminal rows), actions [R] (a_t), terminal [R] bool."""
    logged = torch.nn.functional.one_hot(actions.long(), 2).bool()  # [R, 2]
    values = torch.where(logged, observed_next_value.unsqueeze(1), expected_next)
    return values * (~terminal.bool()).unsqueeze(1).to(values.dtype)


def reward_distribution(
    quantiles: torch.Tensor, next_values: torch.Tensor, gamma: float, cvar_level: float
) -> dict[str, torch.Tensor]:
    """quantiles lambda(s) [R, A, N], next_values [R, 2] (what each response's
    reward subtracts, as in `response_reward`) -> reward quantiles [R, 2, N],
    mean [R, 2], CVaR [R, 2] and the advantage Q(s, 1) - Q(s, 0) [R] (of the
    responses, `response_q_values`)."""
    reward_quantiles, mean = response_reward(quantiles, ACTIONS, next_values, gamma)
    q = response_q_values(quantiles)
    return {
        "quantiles": reward_quantiles,
        "mean": mean,
        "cvar": cvar_of_quantiles(reward_quantiles, cvar_level),
        "advantage": q[:, 1] - q[:, 0],
    }
