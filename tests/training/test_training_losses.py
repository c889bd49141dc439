import math

import pytest
import torch

from mtrec.config import DINConfig, SASRecConfig
from mtrec.data.sequences import WindowBatch
from mtrec.models import ExposureOutputs, build_model
from mtrec.training.losses import (
    GUIDANCES,
    LossContext,
    catalogue_ce,
    make_loss,
    register_guidance,
    required_columns,
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
    @register_guidance("test-reward-weighted")
    def factory(options, context):
        def loss(batch, outputs):
            return (batch.extras["reward"] * outputs.logits).sum()

        loss.required_columns = ("reward",)
        return loss

    try:
        loss_fn = make_loss("test-reward-weighted", {}, _context())
        assert required_columns(loss_fn) == ("reward",)
    finally:
        GUIDANCES.pop("test-reward-weighted")
