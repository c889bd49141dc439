"""The baselines as guidances of the training loop's registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mtrec.baselines.guidance  # noqa: F401  (registers the baselines)
from mtrec.config import SASRecConfig
from mtrec.data.sequences import WindowBatch
from mtrec.models import build_model
from mtrec.training.losses import (
    GUIDANCES,
    LossContext,
    TrainingClock,
    make_loss,
    trains_on_satisfaction,
)

BACKBONE = SASRecConfig(max_history=8, dim=16, n_layers=1, n_heads=2, ffn_dim=32, dropout=0.0)
NAN = float("nan")


def _batch() -> WindowBatch:
    return WindowBatch(
        positives=torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]]),
        items=torch.tensor([[3, 9, 4, 5, 2], [8, 7, 6, 0, 0]]),
        state_index=torch.tensor([[0, 1, 1, 2, 3], [0, 0, 1, 0, 0]]),
        response=torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 0, 0, 0]]),
        mask=torch.tensor([[True] * 5, [True, True, True, False, False]]),
        row=torch.arange(10).reshape(2, 5),
        user_idx=torch.tensor([1, 2]),
        extras={"rating": torch.tensor([[5.0, NAN, 1.0, 4.0, NAN], [NAN, 2.0, NAN, NAN, NAN]])},
    )


def _context(step: int = 0) -> LossContext:
    torch.manual_seed(0)
    return LossContext(model=build_model(BACKBONE, n_items=10), clock=TrainingClock(step=step))


@pytest.mark.parametrize("name", ["ntr", "pnfrec", "adt-tce", "adt-rce"])
def test_every_baseline_is_registered_and_gives_a_differentiable_scalar(name):
    assert name in GUIDANCES
    context = _context(step=1000)
    loss_fn = make_loss(name, {}, context)
    batch = _batch()
    loss = loss_fn(batch, context.model(batch.positives, batch.items, batch.state_index))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert context.model.item_embedding.weight.grad.abs().sum() > 0
    assert (name in ("ntr", "pnfrec")) == trains_on_satisfaction(name)
    assert (loss_fn.required_columns == ("rating",)) == trains_on_satisfaction(name)


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError):
        make_loss("ntr", {"wieght": 2.0}, _context())


def test_ntr_sigmoid_equals_bce_with_disliked_clicks_relabelled():
    context = _context()
    loss_fn = make_loss("ntr", {"probability": "sigmoid"}, context)
    batch = _batch()
    outputs = context.model(batch.positives, batch.items, batch.state_index)
    relabelled = batch.response.clone()
    relabelled[0, 2] = 0.0  # rating 1
    relabelled[1, 1] = 0.0  # rating 2
    real = batch.mask
    expected = F.binary_cross_entropy_with_logits(outputs.logits[real], relabelled[real])
    assert loss_fn(batch, outputs).item() == pytest.approx(expected.item(), rel=1e-5)


def test_tce_follows_the_training_clock():
    context = _context(step=0)
    loss_fn = make_loss("adt-tce", {"max_drop_rate": 0.2, "ramp_steps": 10}, context)
    assert loss_fn.drop_rate() == 0.0
    context.clock.step = 5
    assert loss_fn.drop_rate() == pytest.approx(0.1)
    context.clock.step = 50
    assert loss_fn.drop_rate() == pytest.approx(0.2)


def test_pnfrec_loss_owns_only_the_negative_encoder():
    context = _context()
    loss_fn = make_loss("pnfrec", {"negative_weight": 0.45, "contrast_weight": 0.25}, context)
    own = {id(p) for p in context.model.parameters()}
    extra = loss_fn.extra_parameters()
    assert extra and all(id(p) not in own for p in extra)


def _step(loss_fn, model, optimizer):
    batch = _batch()
    loss = loss_fn(batch, model(batch.positives, batch.items, batch.state_index))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def test_pnfrec_refuses_a_loop_that_leaves_its_encoder_frozen():
    context = _context()
    model = context.model
    loss_fn = make_loss("pnfrec", {}, context)
    frozen = torch.optim.Adam(model.parameters(), lr=1e-2)
    _step(loss_fn, model, frozen)
    with pytest.raises(RuntimeError, match="extra_parameters"):
        _step(loss_fn, model, frozen)
    context = _context()
    loss_fn = make_loss("pnfrec", {}, context)
    both = torch.optim.Adam([*context.model.parameters(), *loss_fn.extra_parameters()], lr=1e-2)
    for _ in range(3):
        _step(loss_fn, context.model, both)


def test_flat_options_from_params_reach_the_loss():
    from mtrec.config import RecommenderConfig

    options = RecommenderConfig(
        guidance_options={"ntr": {"dislike_threshold": 4.0, "probability": "sigmoid"}}
    ).guidance_options["ntr"]
    context = _context()
    loss_fn = make_loss("ntr", options, context)
    batch = _batch()
    outputs = context.model(batch.positives, batch.items, batch.state_index)
    # Threshold 4: the rating-4 click (row 0, slot 3) is disliked too.
    relabelled = batch.response.clone()
    relabelled[0, 2] = relabelled[1, 1] = relabelled[0, 3] = 0.0
    real = batch.mask
    expected = F.binary_cross_entropy_with_logits(outputs.logits[real], relabelled[real])
    assert loss_fn(batch, outputs).item() == pytest.approx(expected.item(), rel=1e-5)
