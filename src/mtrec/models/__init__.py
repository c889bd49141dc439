"""Recommender backbones: SASRec, GRU4Rec and DIN behind one contract.

Conventions
-----------
- Items are `item_idx` in 1..n_items; 0 is padding. Every backbone owns an
  `ItemTower` whose `item_embedding` is `nn.Embedding(n_items + 1, dim,
  padding_idx=0)` plus a per-item bias.
- Histories and positive sequences are LongTensor [B, L] **right-padded**:
  the real items first in time order, zeros after. (Causal encoders then
  never see padding before a real item.)
- States: a positive sequence [B, L] defines L + 1 states; state j is the
  user's state after the first j positives of the row (state 0 = a learned
  BOS vector alone = empty history). An exposure at time t carries
  `state_index` = number of positives of the row before t.

Contract (every backbone; B windows, L positives, M exposure slots)
-------------------------------------------------------------------
    model.kind, model.config, model.n_items, model.max_history
    model.item_embedding                     nn.Embedding(n_items+1, dim, padding_idx=0)
    model.joint_dim                          size J of the state-item representation
    model(positives [B,L], items [B,M], state_index [B,M]) -> ExposureOutputs
        .logits [B,M]                        CTR logit F(i|h) of every exposure
        .states [B,M,D] or None              dot-product backbones only
    model.exposure_logits(positives, items, state_index) -> [B,M]
    model.exposure_joint(positives, items, state_index)  -> [B,M,J]
        joint state-item representation: cat[state, e_i, state*e_i] (J = 3*dim);
        for DIN `state` is the target-attended interest. A reward model puts
        its own head on this: same backbone, only the head differs.
    model.score_items(history [B,L'], items [B,N]) -> [B,N]   logits after the whole history
    model.score_all(history [B,L']) -> [B, n_items+1]          column 0 is -inf
        L' may exceed max_history: only the last max_history items are used.
    model.supports_catalogue                 True for SASRec/GRU4Rec:
        model.catalogue_logits(states [...,D]) -> [..., n_items+1]  (one matmul)

One forward pass covers every position of every window (causal encoders;
DIN masks attention position k > state_index), so training never loops over
prefixes. CTR heads: SASRec/GRU4Rec use state . e_i + b_i (ranking and CTR
agree); DIN an MLP over cat[interest, e_i, interest*e_i] plus b_i.

Saved model = a directory with `weights.pt`, `config.json` (format_version,
kind, n_items, model_config, metadata) and optionally `items.json` (the
original item ids); `save_model` / `load_model` need nothing from
`mtrec.training`.
"""

from mtrec.models.base import ExposureOutputs, history_lengths, last_items
from mtrec.models.din import DINRecommender
from mtrec.models.dot import DotProductRecommender
from mtrec.models.io import (
    Recommender,
    build_model,
    count_parameters,
    load_item_ids,
    load_model,
    parse_model_config,
    read_model_description,
    save_model,
)

__all__ = [
    "DINRecommender",
    "DotProductRecommender",
    "ExposureOutputs",
    "Recommender",
    "build_model",
    "count_parameters",
    "history_lengths",
    "last_items",
    "load_item_ids",
    "load_model",
    "parse_model_config",
    "read_model_description",
    "save_model",
]
