"""Pluggable training losses and the guidance registry.

A loss is a subclass of `Loss` (an `nn.Module`) whose `forward(batch, outputs)`
gives a scalar tensor over a `WindowBatch` and the model's `ExposureOutputs`;
`make_loss` refuses anything else. A *guidance* is a
named way to build the loss for a candidate (`<backbone>-<guidance>`):
`register_guidance(name, options=Model)` registers a factory
`(options, context) -> Loss` and the pydantic model of its options: `options`
is the guidance's mapping from `recommender.guidance_options` (merged with the
backbone's `guidance_options_overrides`), which the config checks against
`Model` when params.yaml is loaded; the factory parses it with the same model.
`context` gives the model, the base-loss weights and the training clock.

`Loss` states what the loop uses, with defaults a loss overrides when it
needs to: `required_columns` (per-exposure columns, e.g. rewards r(s,1), r(s,0),
that the train step joins onto the training exposures; they arrive as
`batch.extras[name]` [W, M]; default none), `prepare_table(table) -> table`
(derives some of those columns from the table, called once before the join,
e.g. MTRec's CVaR at a level other than the read-out's; default identity) and
`extra_parameters()` (parameters the loss owns that the optimiser must train
after the model's, e.g. PNFRec's negative encoder; default none). The loop
moves every loss to the model's device, sets it to train mode and keeps its
`state_dict()` in checkpoints (empty for a loss without parameters).

Guidances that live in other packages register themselves on import: the
comparison rows (`mtrec.baselines.guidance`: not-to-recommend, T-CE, R-CE,
PNFRec) and the MTRec alignment losses (`mtrec.reward`); `make_loss` imports
the modules in `GUIDANCE_PLUGINS` before looking a name up. Here: "none",
BCE on the exposures plus (optionally) the full-catalogue CE on positives.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from mtrec.data.sequences import WindowBatch
from mtrec.guidance_options import NoOptions, register_options
from mtrec.models import ExposureOutputs, Recommender


class Loss(nn.Module, ABC):
    """The base of every guidance's loss (see the module docstring). A subclass
    registers parameters only for what it trains itself (none by default): the
    optimiser gets the model's parameters, then `extra_parameters()`."""

    # Per-exposure columns the train step joins onto the exposures (batch.extras).
    required_columns: tuple[str, ...] = ()

    def prepare_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """The per-exposure table with the columns this loss derives from it."""
        return table

    def extra_parameters(self) -> list[nn.Parameter]:
        """Parameters this loss owns that the optimiser trains after the model's."""
        return []

    @abstractmethod
    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        """The scalar loss of one batch."""


@dataclass
class TrainingClock:
    """Where training is; the loop updates it and checkpoints it."""

    step: int = 0
    epoch: int = 0
    steps_per_epoch: int = 1


@dataclass(frozen=True)
class CatalogueObjective:
    """How the next-item softmax term on positive exposures is computed.

    "full" normalises over every item (RecBole's CE; its cost grows with the
    catalogue). "sampled" normalises over the positive plus `n_negatives` items
    shared by the whole batch, drawn with replacement from `proposal`
    ([n_items + 1] probabilities, 0 at the padding index); "in_batch" over the
    distinct positives of the batch (each slot's own item is its target, the
    others are its negatives), whose proposal is the items' share of positives.
    logQ correction: "sampled" subtracts log(K q(j)) from each negative's logit
    (importance weights, Bengio & Senecal 2008), so its denominator is a
    consistent estimate of the full partition sum; "in_batch" subtracts
    log q(j) from every candidate (Yi et al. 2019). Negatives equal to the
    slot's positive (accidental hits) are left out.
    """

    kind: str = "full"  # full | sampled | in_batch
    n_negatives: int = 256
    proposal: torch.Tensor | None = None
    logq_correction: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("full", "sampled", "in_batch"):
            raise ValueError(f"catalogue objective must be full | sampled | in_batch: {self.kind}")
        if self.kind != "full" and self.proposal is None:
            raise ValueError(f"the {self.kind!r} catalogue objective needs item proposal weights")

    def log_probs(
        self, batch: WindowBatch, outputs: ExposureOutputs, model: Recommender, slots: torch.Tensor
    ) -> torch.Tensor:
        """log p(item | h) of the positive item at each slot of `slots` (bool [W, M]): [n]."""
        if self.kind == "full":
            return catalogue_log_softmax(batch, outputs, model, slots)
        if not model.supports_catalogue or outputs.states is None:
            raise ValueError(f"{model.kind} has no item softmax (use a dot-product backbone)")
        states = outputs.states[slots]  # [n, D]
        targets = batch.items[slots]  # [n]
        proposal = self.proposal.to(states.device)
        if self.kind == "sampled":
            shared = torch.multinomial(proposal, self.n_negatives, replacement=True)  # [K]
            negative_logits = model.shared_item_logits(states, shared)  # [n, K]
            if self.logq_correction:
                # Importance weights 1 / (K q) on the negatives, none on the
                # positive: the denominator estimates the full partition sum.
                log_weight = proposal[shared].clamp_min(1e-12).log() + math.log(len(shared))
                negative_logits = negative_logits - log_weight
            hits = shared.unsqueeze(0) == targets.unsqueeze(1)  # accidental hits
            positive_logits = model.logits_from_states(states, targets).unsqueeze(1)
            logits = torch.cat([positive_logits, negative_logits.masked_fill(hits, -torch.inf)], 1)
            target_column = torch.zeros_like(targets)
        else:
            shared, target_column = torch.unique(targets, return_inverse=True)  # [U], [n]
            logits = model.shared_item_logits(states, shared)  # [n, U]
            if self.logq_correction:
                logits = logits - proposal[shared].clamp_min(1e-12).log()
        return logits.log_softmax(-1).gather(1, target_column.unsqueeze(1)).squeeze(1)


def item_proposal(positive_items: torch.Tensor, n_items: int, alpha: float) -> torch.Tensor:
    """q(item) proportional to (positives of the item + 1) ** alpha over items
    1..n_items (alpha 0: uniform); [n_items + 1] with 0 at the padding index."""
    counts = torch.bincount(positive_items.long(), minlength=n_items + 1)[: n_items + 1]
    weights = (counts.double() + 1.0).pow(alpha)
    weights[0] = 0.0
    return (weights / weights.sum()).float()


@dataclass(frozen=True)
class LossContext:
    model: Recommender
    # Weight of the next-item softmax CE on positive exposures, added to BCE by
    # every guidance here (0 = BCE only), and how that softmax is computed.
    catalogue_ce_weight: float = 0.0
    clock: TrainingClock = field(default_factory=TrainingClock)
    catalogue: CatalogueObjective = field(default_factory=CatalogueObjective)


GuidanceFactory = Callable[[Mapping[str, Any], LossContext], Loss]
GUIDANCES: dict[str, GuidanceFactory] = {}
# Satisfaction signals are for evaluation: only a guidance registered with
# `trains_on_satisfaction=True` (a literature baseline that does, as its paper
# did) may train on these columns; every other guidance is refused.
SATISFACTION_COLUMNS = ("rating", "watch_ratio", "true_reward", "satisfied")
SATISFACTION_GUIDANCES: set[str] = set()
# Modules imported before a lookup so their guidances can register themselves.
GUIDANCE_PLUGINS: tuple[str, ...] = ("mtrec.baselines.guidance", "mtrec.reward.alignment")


def register_guidance(
    name: str, trains_on_satisfaction: bool = False, options: type[BaseModel] | None = None
) -> Callable[[GuidanceFactory], GuidanceFactory]:
    """Register `factory` as guidance `name`; `options` is the model of its options
    (None: it takes none)."""

    def decorator(factory: GuidanceFactory) -> GuidanceFactory:
        # Params are checked against the light registry: keep the two in step.
        register_options(name, NoOptions if options is None else options)
        GUIDANCES[name] = factory
        if trains_on_satisfaction:
            SATISFACTION_GUIDANCES.add(name)
        else:
            SATISFACTION_GUIDANCES.discard(name)
        return factory

    return decorator


def trains_on_satisfaction(name: str) -> bool:
    """Whether guidance `name` is registered as training on a satisfaction signal."""
    if name not in GUIDANCES:
        _load_plugins()
    return name in SATISFACTION_GUIDANCES


def check_satisfaction_use(name: str, columns: tuple[str, ...] | list[str]) -> None:
    """Refuse a guidance that would train on a satisfaction column it may not read."""
    forbidden = [c for c in columns if c in SATISFACTION_COLUMNS]
    if forbidden and not trains_on_satisfaction(name):
        raise ValueError(
            f"guidance {name!r} may not train on satisfaction columns {forbidden}: they are "
            "for evaluation (register it with trains_on_satisfaction=True if, like a "
            "literature baseline, it is meant to)"
        )


def _load_plugins() -> None:
    for module in GUIDANCE_PLUGINS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # the plugin exists but is broken
                raise


def make_loss(name: str, options: Mapping[str, Any], context: LossContext) -> Loss:
    if name not in GUIDANCES:
        _load_plugins()
    try:
        factory = GUIDANCES[name]
    except KeyError as error:
        raise KeyError(f"unknown guidance {name!r}; known: {sorted(GUIDANCES)}") from error
    loss = factory(options, context)
    if not isinstance(loss, Loss):
        raise TypeError(
            f"guidance {name!r} built a {type(loss).__name__}, not a mtrec.training.losses.Loss"
        )
    return loss


# ---------------------------------------------------------------- loss pieces


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def exposure_bce(batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
    """Per-slot BCE [W, M] of the CTR logits against the logged response."""
    return F.binary_cross_entropy_with_logits(outputs.logits, batch.response, reduction="none")


def catalogue_log_softmax(
    batch: WindowBatch, outputs: ExposureOutputs, model: Recommender, slots: torch.Tensor
) -> torch.Tensor:
    """log p(i | h) over the whole catalogue for the exposure slots `slots`
    (bool [W, M]): [n_slots]. Dot-product backbones only."""
    if not model.supports_catalogue or outputs.states is None:
        raise ValueError(f"{model.kind} has no full-catalogue softmax (use a dot-product backbone)")
    logits = model.catalogue_logits(outputs.states[slots])  # [n, n_items + 1]
    return logits.log_softmax(-1).gather(1, batch.items[slots].unsqueeze(1)).squeeze(1)


def catalogue_ce(batch: WindowBatch, outputs: ExposureOutputs, model: Recommender) -> torch.Tensor:
    """Next-item softmax CE over all items on positive exposures (RecBole's CE)."""
    positives = batch.mask & (batch.response > 0.5)
    if not positives.any():
        return outputs.logits.sum() * 0.0
    return -catalogue_log_softmax(batch, outputs, model, positives).mean()


def catalogue_nll(
    context: LossContext, batch: WindowBatch, outputs: ExposureOutputs, slots: torch.Tensor
) -> torch.Tensor:
    """Mean next-item CE over the exposure slots `slots` with the context's
    catalogue objective (full or sampled); 0 when there are none."""
    if not slots.any():
        return outputs.logits.sum() * 0.0
    return -context.catalogue.log_probs(batch, outputs, context.model, slots).mean()


def with_catalogue_ce(
    context: LossContext, batch: WindowBatch, outputs: ExposureOutputs, loss: torch.Tensor
) -> torch.Tensor:
    """`loss` plus the weighted next-item CE on positive exposures (if weighted)."""
    if context.catalogue_ce_weight > 0:
        positives = batch.mask & (batch.response > 0.5)
        ce = catalogue_nll(context, batch, outputs, positives)
        loss = loss + context.catalogue_ce_weight * ce
    return loss


# ------------------------------------------------------------------ guidances


class BCELoss(Loss):
    """BCE on every exposure (+ catalogue CE when its weight is > 0)."""

    def __init__(self, context: LossContext) -> None:
        super().__init__()
        self.context = context

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        loss = masked_mean(exposure_bce(batch, outputs), batch.mask)
        return with_catalogue_ce(self.context, batch, outputs, loss)


@register_guidance("none", options=NoOptions)
def _bce(options: Mapping[str, Any], context: LossContext) -> Loss:
    NoOptions.model_validate(dict(options))
    return BCELoss(context)
