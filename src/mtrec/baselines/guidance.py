"""The comparison rows as guidances of the training loop (`mtrec.training.losses`).

Importing this module registers, in the loop's registry `guidance name ->
loss factory`:

    ntr      not-to-recommend on disliked positives (TRAINS ON SATISFACTION)
    pnfrec   PNFRec's negative branch + objective (TRAINS ON SATISFACTION)
    adt-tce  T-CE, drop the largest-loss positives (no satisfaction signal)
    adt-rce  R-CE, positives weighted by y_hat^beta (no satisfaction signal)

Each factory validates its options with the typed configs of
`mtrec.baselines.config` (unknown keys are rejected).
Losses that read the satisfaction signal list it in `required_columns`, so
the train step joins it onto the exposures (`batch.extras[signal]`).

Every loss here subclasses `mtrec.training.losses.Loss` (an `nn.Module`).
The PNFRec loss has parameters of its own (the negative encoder): the loop
must hand `loss.extra_parameters()` to the optimiser and keep
`loss.state_dict()` in its checkpoints. A loop that does not is caught
on the second training step (the negative encoder got a gradient and did not
move), rather than silently training PNFRec with a frozen random encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mtrec.baselines.config import (
    NotToRecommendConfig,
    PNFRecConfig,
    ReweightedLossConfig,
    TruncatedLossConfig,
)
from mtrec.baselines.denoising import drop_rate_at, reweighted_bce, truncated_bce
from mtrec.baselines.not_to_recommend import (
    log_one_minus_sigmoid,
    log_one_minus_softmax,
    negative_feedback_mask,
    not_to_recommend_bce,
)
from mtrec.baselines.pnfrec import NegativeBranch
from mtrec.data.sequences import WindowBatch
from mtrec.models import ExposureOutputs
from mtrec.training.losses import Loss, LossContext, catalogue_nll, register_guidance


def _catalogue_ce(
    context: LossContext, batch: WindowBatch, outputs: ExposureOutputs, slots: torch.Tensor
) -> torch.Tensor:
    """Mean next-item CE over the exposure slots `slots` (0 if none), full or
    sampled as the context's catalogue objective says."""
    return catalogue_nll(context, batch, outputs, slots)


class NotToRecommendLoss(Loss):
    def __init__(self, config: NotToRecommendConfig, context: LossContext) -> None:
        super().__init__()
        if config.probability == "softmax" and not context.model.supports_catalogue:
            raise ValueError(
                f"ntr with probability 'softmax' needs a full-catalogue softmax; "
                f"{context.model.kind} has none (use probability: sigmoid)"
            )
        self.config = config
        self.context = context
        self.required_columns = (config.signal,)

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        config = feedback = self.config
        negative = negative_feedback_mask(
            batch.response,
            batch.extras[feedback.signal],
            batch.mask,
            feedback.dislike_threshold,
            feedback.include_skips,
        )
        if config.probability == "sigmoid":
            log_not = log_one_minus_sigmoid(outputs.logits)
        else:
            log_not = torch.zeros_like(outputs.logits)
            if negative.any():
                logits = self.context.model.catalogue_logits(outputs.states[negative])
                log_not = log_not.masked_scatter(
                    negative, log_one_minus_softmax(logits, batch.items[negative])
                )
        loss = not_to_recommend_bce(
            outputs.logits,
            batch.response,
            batch.mask,
            negative,
            log_not,
            config.weight,
            config.keep_positive_label,
        )
        ce_weight = self.context.catalogue_ce_weight
        if ce_weight == 0 and config.probability == "softmax":
            ce_weight = config.softmax_ce_weight
        if ce_weight > 0:
            liked = batch.mask & (batch.response > 0.5) & ~negative
            loss = loss + ce_weight * _catalogue_ce(self.context, batch, outputs, liked)
        return loss


class TruncatedLoss(Loss):
    def __init__(self, config: TruncatedLossConfig, context: LossContext) -> None:
        super().__init__()
        self.config = config
        self.context = context

    def drop_rate(self) -> float:
        return drop_rate_at(
            self.context.clock.step, self.config.max_drop_rate, self.config.ramp_steps
        )

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        loss = truncated_bce(outputs.logits, batch.response, batch.mask, self.drop_rate())
        if self.context.catalogue_ce_weight > 0:
            positives = batch.mask & (batch.response > 0.5)
            ce = _catalogue_ce(self.context, batch, outputs, positives)
            loss = loss + self.context.catalogue_ce_weight * ce
        return loss


class ReweightedLoss(Loss):
    def __init__(self, config: ReweightedLossConfig, context: LossContext) -> None:
        super().__init__()
        self.config = config
        self.context = context

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        config = self.config
        loss = reweighted_bce(
            outputs.logits, batch.response, batch.mask, config.beta, config.reweight_negatives
        )
        if self.context.catalogue_ce_weight > 0:
            positives = batch.mask & (batch.response > 0.5)
            ce = _catalogue_ce(self.context, batch, outputs, positives)
            loss = loss + self.context.catalogue_ce_weight * ce
        return loss


class PNFRecLoss(Loss):
    """PNFRec's objective for the loop's SASRec (the positive encoder); owns
    the negative encoder. CE_pos is PNFRec's own catalogue CE, so the loop's
    catalogue CE weight is not added again."""

    def __init__(self, config: PNFRecConfig, context: LossContext) -> None:
        super().__init__()
        self.context = context
        self.branch = NegativeBranch(config, context.model)
        self.required_columns = (config.signal,)
        self.signal = config.signal
        self._previous_probe: torch.Tensor | None = None

    def extra_parameters(self) -> list[nn.Parameter]:
        return self.branch.extra_parameters(self.context.model)

    def _check_optimised(self) -> None:
        probe = self.branch.negative_encoder.bos
        moved_since_last_step = self._previous_probe is None or not torch.equal(
            probe.detach(), self._previous_probe
        )
        had_gradient = probe.grad is not None and bool(probe.grad.abs().sum() > 0)
        if had_gradient and not moved_since_last_step:
            raise RuntimeError(
                "the training loop does not optimise PNFRec's negative encoder: give "
                "loss.extra_parameters() to the optimiser (and loss.state_dict() to checkpoints)"
            )
        self._previous_probe = probe.detach().clone()

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        # The loop moves the model to its device after building the loss.
        device = outputs.logits.device
        if self.branch.negative_encoder.bos.device != device:
            self.branch.to(device)
        if self.training and torch.is_grad_enabled():
            self._check_optimised()
        terms = self.branch.loss_terms(
            self.context.model,
            outputs,
            batch.items,
            batch.response,
            batch.mask,
            batch.extras[self.signal],
        )
        return self.branch.combine(terms)


@register_guidance(
    "ntr",
    trains_on_satisfaction=NotToRecommendConfig.trains_on_satisfaction,
    options=NotToRecommendConfig,
)
def _ntr(options: Mapping[str, Any], context: LossContext) -> NotToRecommendLoss:
    return NotToRecommendLoss(NotToRecommendConfig.model_validate(dict(options)), context)


@register_guidance(
    "adt-tce",
    trains_on_satisfaction=TruncatedLossConfig.trains_on_satisfaction,
    options=TruncatedLossConfig,
)
def _adt_tce(options: Mapping[str, Any], context: LossContext) -> TruncatedLoss:
    return TruncatedLoss(TruncatedLossConfig.model_validate(dict(options)), context)


@register_guidance(
    "adt-rce",
    trains_on_satisfaction=ReweightedLossConfig.trains_on_satisfaction,
    options=ReweightedLossConfig,
)
def _adt_rce(options: Mapping[str, Any], context: LossContext) -> ReweightedLoss:
    return ReweightedLoss(ReweightedLossConfig.model_validate(dict(options)), context)


@register_guidance(
    "pnfrec", trains_on_satisfaction=PNFRecConfig.trains_on_satisfaction, options=PNFRecConfig
)
def _pnfrec(options: Mapping[str, Any], context: LossContext) -> PNFRecLoss:
    return PNFRecLoss(PNFRecConfig.model_validate(dict(options)), context)
