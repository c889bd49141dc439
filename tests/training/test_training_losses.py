import math

import pytest
import torch

from mtrec.config import DINConfig, SASRecConfig
from mtrec.data.sequences import WindowBatch
from mtrec.models import ExposureOutputs, build_model
from mtrec.training.losses import (
    GUIDANCES,
    CatalogueObjective,
    Loss,
    LossContext,
    catalogue_ce,
    item_proposal,
    make_loss,
    register_guidance,
)


def _batch(response, mask=None) -> WindowBatch:
    response = torch.tensor([response], dtype=torch.float32)
    width = response.shape[1]
    return WindowBatch(
        positives=torch.tensor([[1, 2]]),
        items=torch.arange(1, width + 1).unsqueeze(0),
        state_index=torch.zeros(1, width, dtype=torch.long),
        response=response,
        mask=torch.ones(1, width, dtype=torch.bool) if mask is None else torch.tensor([mask]),
        row=torch.arange(width).unsqueeze(0),
        user_idx=torch.tensor([1]),
    )


def _context(kind="sasrec", **kwargs) -> LossContext:
    config = SASRecConfig(max_history=4, dim=4, n_layers=1, ffn_dim=8) if kind == "sasrec" else None
    config = config or DINConfig(max_history=4, dim=4, mlp_hidden=(4,))
    return LossContext(model=build_model(config, 6), **kwargs)


def _bce(logit: float, label: float) -> float:
    return math.log1p(math.exp(-logit)) if label else math.log1p(math.exp(logit))


def test_bce_is_the_masked_mean_over_exposures():
    batch = _batch([1, 0, 1], mask=[True, True, False])
    outputs = ExposureOutputs(logits=torch.tensor([[0.0, 2.0, 5.0]]))
    loss = make_loss("none", {}, _context())(batch, outputs)
    assert loss.item() == pytest.approx((_bce(0.0, 1) + _bce(2.0, 0)) / 2, rel=1e-6)


def test_catalogue_ce_matches_a_hand_softmax():
    context = _context()
    model = context.model
    states = torch.randn(1, 2, 4)
    batch = _batch([1, 0])
    outputs = ExposureOutputs(logits=torch.zeros(1, 2), states=states)
    logits = states[0, 0] @ model.item_embedding.weight[1:].T + model.items.bias.weight[1:, 0]
    expected = -torch.log_softmax(logits, 0)[0]
    assert catalogue_ce(batch, outputs, model).item() == pytest.approx(expected.item(), rel=1e-5)
    with_ce = make_loss("none", {}, LossContext(model=model, catalogue_ce_weight=0.5))
    base = make_loss("none", {}, LossContext(model=model))
    difference = with_ce(batch, outputs) - base(batch, outputs)
    assert difference.item() == pytest.approx(0.5 * expected.item(), rel=1e-5)


def test_unknown_guidance_and_bad_options_fail_loudly():
    with pytest.raises(KeyError, match="unknown guidance"):
        make_loss("no-such-guidance", {}, _context())
    with pytest.raises(ValueError):
        make_loss("none", {"typo": 1}, _context())


def test_a_registered_guidance_gets_its_columns():
    class RewardWeighted(Loss):
        required_columns = ("reward",)

        def forward(self, batch, outputs):
            return (batch.extras["reward"] * outputs.logits).sum()

    register_guidance("test-reward-weighted")(lambda options, context: RewardWeighted())
    try:
        loss_fn = make_loss("test-reward-weighted", {}, _context())
        assert loss_fn.required_columns == ("reward",)
    finally:
        GUIDANCES.pop("test-reward-weighted")


def test_a_guidance_that_does_not_build_a_loss_is_refused():
    def plain(batch, outputs):  # pragma: no cover - never called
        return outputs.logits.sum()

    register_guidance("test-plain-callable")(lambda options, context: plain)
    try:
        with pytest.raises(TypeError, match="test-plain-callable.*not a .*Loss"):
            make_loss("test-plain-callable", {}, _context())
    finally:
        GUIDANCES.pop("test-plain-callable")


def test_a_loss_without_forward_cannot_be_built():
    class NoForward(Loss):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoForward()


# ------------------------------------------------- sampled and in-batch softmax


def _positives_batch(items: list[int]) -> WindowBatch:
    width = len(items)
    return WindowBatch(
        positives=torch.tensor([[1, 2]]),
        items=torch.tensor([items]),
        state_index=torch.zeros(1, width, dtype=torch.long),
        response=torch.ones(1, width),
        mask=torch.ones(1, width, dtype=torch.bool),
        row=torch.arange(width).unsqueeze(0),
        user_idx=torch.tensor([1]),
    )


def test_item_proposal_is_smoothed_popularity_to_the_alpha():
    proposal = item_proposal(torch.tensor([1, 1, 1, 2]), n_items=3, alpha=1.0)
    assert proposal.tolist() == pytest.approx([0.0, 4 / 7, 2 / 7, 1 / 7])
    uniform = item_proposal(torch.tensor([1, 1, 1, 2]), n_items=3, alpha=0.0)
    assert uniform.tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])


def test_sampled_softmax_matches_a_hand_computation_with_logq():
    model = _context().model
    states = torch.randn(1, 2, 4)
    batch = _positives_batch([3, 5])
    outputs = ExposureOutputs(logits=torch.zeros(1, 2), states=states)
    proposal = item_proposal(torch.tensor([1, 1, 2, 3, 4, 5, 6]), n_items=6, alpha=1.0)
    objective = CatalogueObjective("sampled", n_negatives=4, proposal=proposal)
    torch.manual_seed(7)
    got = objective.log_probs(batch, outputs, model, batch.mask)
    torch.manual_seed(7)
    negatives = torch.multinomial(proposal, 4, replacement=True)
    for slot, target in enumerate([3, 5]):
        candidates = torch.cat([torch.tensor([target]), negatives])
        logits = model.logits_from_states(states[0, slot].expand(5, -1), candidates)
        logits[1:] = logits[1:] - (4 * proposal[negatives]).log()  # 1 / (K q) weights
        logits[1:][negatives == target] = float("-inf")  # accidental hits
        assert got[slot].item() == pytest.approx(torch.log_softmax(logits, 0)[0].item(), rel=1e-5)


def test_in_batch_softmax_uses_the_batchs_distinct_positives():
    model = _context().model
    states = torch.randn(1, 3, 4)
    batch = _positives_batch([2, 4, 2])
    outputs = ExposureOutputs(logits=torch.zeros(1, 3), states=states)
    proposal = item_proposal(torch.tensor([2, 2, 4]), n_items=6, alpha=1.0)
    objective = CatalogueObjective("in_batch", proposal=proposal)
    got = objective.log_probs(batch, outputs, model, batch.mask)
    candidates = torch.tensor([2, 4])
    for slot, target_column in enumerate([0, 1, 0]):
        logits = model.logits_from_states(states[0, slot].expand(2, -1), candidates)
        logits = logits - proposal[candidates].log()
        expected = torch.log_softmax(logits, 0)[target_column]
        assert got[slot].item() == pytest.approx(expected.item(), rel=1e-5)


def test_sampled_softmax_with_logq_estimates_the_full_softmax():
    """Averaged over many draws, the corrected sampled CE approaches the full CE
    (it is consistent as the number of negatives grows); without the logQ
    correction a popularity sampler is biased."""
    model = _context().model
    torch.manual_seed(0)
    states = torch.randn(1, 1, 4) * 2
    batch = _positives_batch([6])
    outputs = ExposureOutputs(logits=torch.zeros(1, 1), states=states)
    full = CatalogueObjective().log_probs(batch, outputs, model, batch.mask).item()
    proposal = item_proposal(torch.tensor([1] * 50 + [2] * 20 + [3]), n_items=6, alpha=1.0)
    corrected = CatalogueObjective("sampled", n_negatives=2000, proposal=proposal)
    uncorrected = CatalogueObjective(
        "sampled", n_negatives=2000, proposal=proposal, logq_correction=False
    )
    with torch.no_grad():
        est = torch.stack(
            [corrected.log_probs(batch, outputs, model, batch.mask) for _ in range(20)]
        )
        raw = torch.stack(
            [uncorrected.log_probs(batch, outputs, model, batch.mask) for _ in range(20)]
        )
    assert est.mean().item() == pytest.approx(full, abs=0.05)
    assert abs(raw.mean().item() - full) > 5 * abs(est.mean().item() - full)


def test_the_training_loss_uses_the_contexts_catalogue_objective():
    model = _context().model
    states = torch.randn(1, 2, 4)
    batch = _positives_batch([3, 5])
    outputs = ExposureOutputs(logits=torch.zeros(1, 2), states=states)
    proposal = item_proposal(torch.tensor([1, 2, 3]), n_items=6, alpha=0.0)
    objective = CatalogueObjective("sampled", n_negatives=3, proposal=proposal)
    context = LossContext(model=model, catalogue_ce_weight=1.0, catalogue=objective)
    base = make_loss("none", {}, LossContext(model=model))(batch, outputs)
    torch.manual_seed(3)
    loss = make_loss("none", {}, context)(batch, outputs)
    torch.manual_seed(3)
    expected = -objective.log_probs(batch, outputs, model, batch.mask).mean()
    assert (loss - base).item() == pytest.approx(expected.item(), rel=1e-5)
