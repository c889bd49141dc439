"""MTRec's alignment loss for guided recommenders (METHOD.md section 3).

    L_align = -E[F(i|h) r(s, 1) + (1 - F(i|h)) r(s, 0)]
    L       = L_BCE + beta * L_align

The per-exposure rewards come from `rewards/<backbone>.parquet` (the read-out), joined
onto the training exposures by the training step (keys `split`, `split_row`)
and handed to the loss as `batch.extras[column]`. Guidances registered here:

    mtrec           mean reward r(s, a)           (z-scored on train)
    mtrec-cvar      CVaR_q of r(s, a)             (risk-sensitive; ours). Option `q`:
                    the risk level, derived at training time from the stored
                    quantiles; unset = the read-out's `reward.cvar_level`
    mtrec-expected  expected-next-value read-out  (ours; METHOD.md section 6)
    irl             mean reward of the -IRL model (columns prefixed `irl_`)

and one that is not MTRec, the bar its reward must clear (METHOD.md section 4):

    proxy-continuation  r(s, 1) = the item's share of train clicks after which the
                    user went on in the session (behaviour only, z-scored on
                    train), r(s, 0) = 0; derived from the read-out table's log
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtrec.data.sequences import WindowBatch
from mtrec.models import ExposureOutputs
from mtrec.reward.options import AlignmentOptions, CVaROptions, ExpectedOptions, ProxyOptions
from mtrec.reward.proxies import item_continuation_reward, proxy_session_gap
from mtrec.reward.readout import IRL_PREFIX, cvar_columns, with_cvar_columns
from mtrec.training.losses import (
    Loss,
    LossContext,
    exposure_bce,
    masked_mean,
    register_guidance,
    with_catalogue_ce,
)

# Guidance name -> (column of r(s, 1), column of r(s, 0)) in the read-out table.
GUIDANCE_COLUMNS: dict[str, tuple[str, str]] = {
    "mtrec": ("reward_pos_mean_z", "reward_neg_mean_z"),
    "mtrec-cvar": ("reward_pos_cvar_z", "reward_neg_cvar_z"),
    "mtrec-expected": ("reward_pos_expected_z", "reward_neg_expected_z"),
    "irl": (f"{IRL_PREFIX}reward_pos_mean_z", f"{IRL_PREFIX}reward_neg_mean_z"),
}


def alignment_loss(
    click_probability: torch.Tensor,
    reward_positive: torch.Tensor,
    reward_negative: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """-mean over masked slots of F r(s,1) + (1 - F) r(s,0); all inputs [W, M]."""
    expected = click_probability * reward_positive + (1 - click_probability) * reward_negative
    return -masked_mean(expected, mask)


class AlignedBCELoss(Loss):
    """BCE (+ catalogue CE when its weight is > 0) + beta * L_align."""

    def __init__(
        self,
        context: LossContext,
        beta: float,
        reward_positive_column: str,
        reward_negative_column: str,
        cvar_level: float | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.beta = beta
        self.reward_positive_column = reward_positive_column
        self.reward_negative_column = reward_negative_column
        # Set when the reward columns are the CVaR at this level, derived from the
        # stored quantiles by `prepare_table` rather than read from the table.
        self.cvar_level = cvar_level

    @property
    def required_columns(self) -> tuple[str, str]:
        return (self.reward_positive_column, self.reward_negative_column)

    def prepare_table(self, table: pd.DataFrame) -> pd.DataFrame:
        if self.cvar_level is None or set(self.required_columns) <= set(table.columns):
            return table
        return with_cvar_columns(table, self.cvar_level)

    def forward(self, batch: WindowBatch, outputs: ExposureOutputs) -> torch.Tensor:
        loss = masked_mean(exposure_bce(batch, outputs), batch.mask)
        loss = with_catalogue_ce(self.context, batch, outputs, loss)
        align = alignment_loss(
            torch.sigmoid(outputs.logits),
            batch.extras[self.reward_positive_column],
            batch.extras[self.reward_negative_column],
            batch.mask,
        )
        return loss + self.beta * align


def _factory(name: str, options_model: type[AlignmentOptions]):
    positive, negative = GUIDANCE_COLUMNS[name]

    def build(options: Mapping[str, Any], context: LossContext) -> AlignedBCELoss:
        parsed = options_model.model_validate(dict(options))
        return AlignedBCELoss(context, parsed.beta, positive, negative)

    build.__name__ = f"_{name.replace('-', '_')}"
    return build


for _name in GUIDANCE_COLUMNS:
    if _name != "mtrec-cvar":  # it has a factory of its own, below (option q)
        _model = ExpectedOptions if _name == "mtrec-expected" else AlignmentOptions
        register_guidance(_name, options=_model)(_factory(_name, _model))


@register_guidance("mtrec-cvar", options=CVaROptions)
def _mtrec_cvar(options: Mapping[str, Any], context: LossContext) -> AlignedBCELoss:
    """CVaR at the read-out's level (stored columns), or at option `q` (derived)."""
    parsed = CVaROptions.model_validate(dict(options))
    if parsed.q is None:
        return AlignedBCELoss(context, parsed.beta, *GUIDANCE_COLUMNS["mtrec-cvar"])
    return AlignedBCELoss(context, parsed.beta, *cvar_columns(parsed.q), cvar_level=parsed.q)


PROXY_COLUMNS = ("proxy_continuation_z", "proxy_zero")


class ProxyAlignedLoss(AlignedBCELoss):
    """The alignment loss with the item-continuation proxy as its reward."""

    def __init__(self, context: LossContext, options: ProxyOptions) -> None:
        super().__init__(context, options.beta, *PROXY_COLUMNS)
        self.session_gap = proxy_session_gap(options.session_gap)
        self.prior_count = options.prior_count

    def prepare_table(self, table: pd.DataFrame) -> pd.DataFrame:
        if set(self.required_columns) <= set(table.columns):  # the loss contract
            return table
        reward = item_continuation_reward(table, self.session_gap, self.prior_count)
        return table.assign(
            **{PROXY_COLUMNS[0]: reward.astype("float32"), PROXY_COLUMNS[1]: np.float32(0.0)}
        )


@register_guidance("proxy-continuation", options=ProxyOptions)
def _proxy_continuation(options: Mapping[str, Any], context: LossContext) -> ProxyAlignedLoss:
    return ProxyAlignedLoss(context, ProxyOptions.model_validate(dict(options)))
