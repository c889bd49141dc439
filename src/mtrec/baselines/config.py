"""Typed configs of the comparison rows (METHOD.md section 5).

Each validates the options of one guidance (params.yaml
`recommender.guidance_options.<name>`); unknown keys are rejected. They live
beside the baselines rather than in `mtrec.config` so that this area could
land without touching the shared file. Options are flat (guidance_options
values are scalars). Each config says whether the baseline trains on a
satisfaction signal (`trains_on_satisfaction`), so the comparison table can
say so: MTRec itself never does.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mtrec.config import StrictModel

SatisfactionSignal = Literal["rating", "watch_ratio", "true_reward"]


class NegativeFeedbackOptions(StrictModel):
    """Which exposures count as negative feedback for the baselines that use it.

    A positive (response 1) whose satisfaction `signal` is at most
    `dislike_threshold` is a disliked item (ML-100k: rating <= 2). Positives
    whose signal is unknown (NaN) are not negative feedback. `include_skips`
    also counts every response-0 exposure (sensible with logged negatives,
    e.g. KuaiRand; with sampled negatives, as on ML-100k, they are random
    items, not feedback).
    """

    signal: SatisfactionSignal = "rating"
    dislike_threshold: float = 2.0
    include_skips: bool = False


class NotToRecommendConfig(NegativeFeedbackOptions):
    """Not-to-recommend loss (Wang et al., RecSys 2023, arXiv 2308.12256).

    TRAINS ON THE SATISFACTION SIGNAL (as in the paper): exposures with negative
    feedback get `weight * -log(1 - p(i|h))` instead of (or, with
    `keep_positive_label`, on top of) their positive BCE term.

    `probability`: "sigmoid" uses the CTR head, p = sigmoid(F(i|h)) (every
    backbone; with weight 1 and no positive label this equals relabelling the
    disliked clicks as negatives); "softmax" uses the model's softmax over the
    whole catalogue as in the paper (dot-product backbones only).
    """

    trains_on_satisfaction: ClassVar[bool] = True

    probability: Literal["sigmoid", "softmax"] = "softmax"
    weight: float = Field(1.0, ge=0.0)
    keep_positive_label: bool = False
    # "softmax" only: the paper's next-item loss, a full-catalogue CE on the
    # liked positives, so that the softmax p(i|h) means something. The loop's
    # own catalogue CE weight replaces it when that is > 0.
    softmax_ce_weight: float = Field(1.0, ge=0.0)


class TruncatedLossConfig(StrictModel):
    """T-CE (ADT, Wang et al. WSDM 2021): drop the largest-loss positives.

    The drop rate rises linearly from 0 to `max_drop_rate` over `ramp_steps`
    optimiser steps and then stays there. Uses no satisfaction signal.
    """

    trains_on_satisfaction: ClassVar[bool] = False

    max_drop_rate: float = Field(0.2, ge=0.0, lt=1.0)
    ramp_steps: int = Field(200, ge=1)


class ReweightedLossConfig(StrictModel):
    """R-CE (ADT, Wang et al. WSDM 2021): each positive's BCE times y_hat^beta
    (y_hat = sigmoid of the logit, detached). `reweight_negatives` also weighs
    negatives by (1 - y_hat)^beta, as the authors' code does. Uses no
    satisfaction signal."""

    trains_on_satisfaction: ClassVar[bool] = False

    beta: float = Field(0.2, ge=0.0)
    reweight_negatives: bool = False


class PNFRecConfig(NegativeFeedbackOptions):
    """PNFRec (Ivanova, Frolov, Vasilev, RecSys 2025).

    TRAINS ON THE SATISFACTION SIGNAL (as in the paper): the negative sequence
    is the user's disliked positives (and skips, optionally).

    L = exposure_bce_weight * BCE(exposures) + CE_pos + negative_weight * CE_neg
        + contrast_weight * L_contrast
    (alpha = 0.45, beta = 0.25 published for ML-1M). The BCE term keeps the CTR
    head calibrated like every other candidate here (0: the paper's objective).
    Only the positive encoder is used at inference; it is a plain SASRec
    recommender (`mtrec.models`), saved and served as one. The negative
    encoder copies the positive backbone's architecture.
    """

    trains_on_satisfaction: ClassVar[bool] = True

    negative_weight: float = Field(0.45, ge=0.0)
    contrast_weight: float = Field(0.25, ge=0.0)
    exposure_bce_weight: float = Field(1.0, ge=0.0)
    # Longest negative sequence the negative encoder sees (the last ones kept).
    max_negative_history: int = Field(50, ge=1)
