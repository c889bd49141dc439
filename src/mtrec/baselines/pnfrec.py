"""PNFRec (Ivanova, Frolov, Vasilev, RecSys 2025): positive and negative
sequences through two causal transformer encoders sharing item embeddings.

    L = exposure_bce_weight * BCE + CE_pos + alpha * CE_neg + beta * L_contrast

Our reading in the CTR setting (the paper's equations were not available to
us; this is a reconstruction from its text, written down here):

- Positive encoder: a plain SASRec recommender from `mtrec.models` over the
  user's positives (response 1), exactly what `score_all` sees at inference,
  where no satisfaction signal exists. Only it is used at inference, so the
  saved model is that recommender (`PNFRec.recommender`), loadable with
  `mtrec.models.load_model` and servable like any backbone.
- Negative feedback (TRAINS ON THE SATISFACTION SIGNAL, as the paper does):
  positives whose signal is <= threshold (ML-100k: rating <= 2), plus skipped
  exposures if asked (`NegativeFeedbackConfig`).
- CE_pos: full-catalogue softmax CE of every liked positive exposure from the
  positive state it sees (each exposure counted once: windows do not repeat
  exposures).
- CE_neg: the negative encoder reads the window's negative items in order
  and predicts each next negative item (full-catalogue CE with the shared
  embeddings). Negatives from before the window are not seen (a window holds
  the exposures of its own stretch of the log).
- L_contrast: opposing patterns at the same positive state: for each
  negative-feedback exposure n seen at state h, the next liked positive p of
  the window must outscore it, softplus(F(n|h) - F(p|h)) (BPR form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtrec.baselines.config import PNFRecConfig
from mtrec.baselines.not_to_recommend import negative_feedback_mask
from mtrec.config import SASRecConfig
from mtrec.models import DotProductRecommender, ExposureOutputs, build_model
from mtrec.models.encoders import SASRecEncoder


def negative_sequences(
    items: torch.Tensor, negative: torch.Tensor, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative items of each row in slot order, right-padded.

    items [W, M], negative [W, M] bool -> (sequences [W, K], rank [W, M]) with
    K = min(max_length, most negatives in a row) (at least 1); only the last
    `max_length` of a row are kept. rank[w, m] is the position of slot m in
    its row's sequence (number of kept negatives before it; -1 where the slot
    is not a kept negative)."""
    counts = negative.sum(dim=1, keepdim=True)  # [W, 1]
    rank = negative.long().cumsum(dim=1) - 1 - (counts - max_length).clamp(min=0)
    kept = negative & (rank >= 0)
    width = max(1, min(max_length, int(counts.max().item()) if counts.numel() else 0))
    sequences = torch.zeros(items.shape[0], width, dtype=items.dtype, device=items.device)
    rows = torch.arange(items.shape[0], device=items.device).unsqueeze(1).expand_as(items)
    sequences[rows[kept], rank[kept]] = items[kept]
    return sequences, torch.where(kept, rank, -1)


def next_liked_slot(liked: torch.Tensor) -> torch.Tensor:
    """liked [W, M] bool -> [W, M] long: the first slot j > m of the row that
    is liked, or M if none."""
    width = liked.shape[1]
    slots = torch.arange(width, device=liked.device).expand_as(liked)
    candidate = torch.where(liked, slots, width)
    # Suffix minimum over j >= m, then shifted by one to get j > m.
    suffix = candidate.flip(1).cummin(dim=1).values.flip(1)
    after = torch.full_like(suffix, width)
    after[:, :-1] = suffix[:, 1:]
    return after


class NegativeBranch(nn.Module):
    """The negative encoder of PNFRec and the objective, for a given positive
    recommender whose item embeddings it shares.

    It holds no reference to the recommender's other weights, so a training
    loop can keep training a plain SASRec and give the optimiser
    `extra_parameters(recommender)` on top of the recommender's own.
    """

    def __init__(self, config: PNFRecConfig, recommender: DotProductRecommender) -> None:
        super().__init__()
        if not isinstance(recommender, DotProductRecommender) or recommender.kind != "sasrec":
            raise TypeError("PNFRec needs a SASRec (dot-product transformer) recommender")
        self.config = config
        negative_config = recommender.config.model_copy(
            update={"max_history": config.max_negative_history}
        )
        self.negative_encoder = SASRecEncoder(negative_config, recommender.item_embedding)

    def extra_parameters(self, recommender: nn.Module) -> list[nn.Parameter]:
        """Parameters of this branch that the recommender does not own."""
        shared = {id(p) for p in recommender.parameters()}
        return [p for p in self.parameters() if id(p) not in shared]

    def loss_terms(
        self,
        recommender: DotProductRecommender,
        outputs: ExposureOutputs,
        items: torch.Tensor,
        response: torch.Tensor,
        mask: torch.Tensor,
        signal: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Each term of the objective (scalars) for one batch of windows.

        outputs: the recommender's forward over the batch; items/response/
        mask/signal [W, M] (signal: the satisfaction signal, NaN where unknown)."""
        feedback = self.config
        negative = negative_feedback_mask(
            response, signal, mask, feedback.dislike_threshold, feedback.include_skips
        )
        liked = mask & (response > 0.5) & ~negative
        states = outputs.states  # [W, M, D]
        zero = outputs.logits.new_zeros(())

        bce = F.binary_cross_entropy_with_logits(outputs.logits, response.float(), reduction="none")
        terms = {"bce": (bce * mask).sum() / mask.sum().clamp(min=1)}

        if liked.any():
            logits = recommender.catalogue_logits(states[liked])  # [P, C]
            terms["ce_pos"] = F.cross_entropy(logits, items[liked])
        else:
            terms["ce_pos"] = zero

        sequences, _ = negative_sequences(items, negative, self.config.max_negative_history)
        if negative.any():
            negative_states = self.negative_encoder(sequences)[:, :-1]  # [W, K, D]
            real = sequences > 0
            embeddings = recommender.item_embedding.weight  # [C, D]
            negative_logits = negative_states[real] @ embeddings.T  # [N, C]
            negative_logits[:, 0] = float("-inf")
            terms["ce_neg"] = F.cross_entropy(negative_logits, sequences[real])
        else:
            terms["ce_neg"] = zero

        following = next_liked_slot(liked)  # [W, M]
        pairs = negative & (following < items.shape[1])
        if pairs.any():
            liked_items = items.gather(1, following.clamp(max=items.shape[1] - 1))
            negative_scores = recommender.logits_from_states(states[pairs], items[pairs])
            liked_scores = recommender.logits_from_states(states[pairs], liked_items[pairs])
            terms["contrast"] = F.softplus(negative_scores - liked_scores).mean()
        else:
            terms["contrast"] = zero
        return terms

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        config = self.config
        return (
            config.exposure_bce_weight * terms["bce"]
            + terms["ce_pos"]
            + config.negative_weight * terms["ce_neg"]
            + config.contrast_weight * terms["contrast"]
        )


class PNFRec(nn.Module):
    """A SASRec recommender plus the negative branch, as one module.

    Satisfies the backbone contract of `mtrec.models` by delegating to the
    positive recommender (inference uses it alone: save `model.recommender`
    with `mtrec.models.save_model`); `loss` is the PNFRec objective.
    """

    supports_catalogue = True

    def __init__(self, config: PNFRecConfig, backbone: SASRecConfig, n_items: int) -> None:
        super().__init__()
        recommender = build_model(backbone, n_items)
        self.recommender = recommender
        self.branch = NegativeBranch(config, recommender)

    @property
    def kind(self) -> str:
        return self.recommender.kind

    @property
    def config(self):
        return self.recommender.config

    @property
    def n_items(self) -> int:
        return self.recommender.n_items

    @property
    def max_history(self) -> int:
        return self.recommender.max_history

    @property
    def joint_dim(self) -> int:
        return self.recommender.joint_dim

    @property
    def item_embedding(self) -> nn.Embedding:
        return self.recommender.item_embedding

    def forward(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> ExposureOutputs:
        return self.recommender(positives, items, state_index)

    def exposure_logits(self, positives, items, state_index) -> torch.Tensor:
        return self.recommender.exposure_logits(positives, items, state_index)

    def exposure_joint(self, positives, items, state_index) -> torch.Tensor:
        return self.recommender.exposure_joint(positives, items, state_index)

    def catalogue_logits(self, states: torch.Tensor) -> torch.Tensor:
        return self.recommender.catalogue_logits(states)

    def score_all(self, history: torch.Tensor) -> torch.Tensor:
        return self.recommender.score_all(history)

    def score_items(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.recommender.score_items(history, items)

    def loss_terms(self, positives, items, state_index, response, mask, signal):
        outputs = self.recommender(positives, items, state_index)
        return self.branch.loss_terms(self.recommender, outputs, items, response, mask, signal)

    def loss(
        self,
        positives: torch.Tensor,
        items: torch.Tensor,
        state_index: torch.Tensor,
        response: torch.Tensor,
        mask: torch.Tensor,
        signal: torch.Tensor,
    ) -> torch.Tensor:
        """positives [W, L]; items/state_index/response/mask/signal [W, M] -> scalar."""
        terms = self.loss_terms(positives, items, state_index, response, mask, signal)
        return self.branch.combine(terms)
