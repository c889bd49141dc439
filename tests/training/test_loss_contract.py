"""Every registered guidance builds a `Loss` that keeps the loop's contract.

Parametrised over `known_guidances()` (every guidance mtrec ships), so a new
guidance is checked without touching this file: it subclasses `Loss`, a forward
on a tiny batch gives a finite, differentiable scalar, and the optimiser sees
the model's parameters in the model's order followed by the loss's own
(`extra_parameters()`), nothing else: a loss that registered the recommender as
a submodule, or owned parameters the optimiser never sees, fails here.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mtrec.config import GRU4RecConfig, SASRecConfig
from mtrec.data.sequences import WindowBatch
from mtrec.guidance_options import known_guidances
from mtrec.models import build_model
from mtrec.training import losses
from mtrec.training.loop import trainable_parameters
from mtrec.training.losses import Loss, LossContext, TrainingClock, make_loss

BACKBONES = {
    "sasrec": SASRecConfig(max_history=8, dim=16, n_layers=1, n_heads=2, ffn_dim=32, dropout=0.0),
    "gru4rec": GRU4RecConfig(max_history=8, dim=16),
}
# Guidances that refuse a backbone when built (their own check, not the contract's).
REFUSES = {("pnfrec", "gru4rec")}
NAN = float("nan")


def _batch(columns: tuple[str, ...]) -> WindowBatch:
    response = torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 0, 0, 0]])
    generator = torch.Generator().manual_seed(0)
    extras = {}
    for column in columns:
        if column == "rating":  # a rating on clicks only, as in the processed data
            values = torch.tensor([[5.0, NAN, 1.0, 4.0, NAN], [NAN, 2.0, NAN, NAN, NAN]])
        else:
            values = torch.randn(response.shape, generator=generator)
        extras[column] = values
    return WindowBatch(
        positives=torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]]),
        items=torch.tensor([[3, 9, 4, 5, 2], [8, 7, 6, 0, 0]]),
        state_index=torch.tensor([[0, 1, 1, 2, 3], [0, 0, 1, 0, 0]]),
        response=response,
        mask=torch.tensor([[True] * 5, [True, True, True, False, False]]),
        row=torch.arange(10).reshape(2, 5),
        user_idx=torch.tensor([1, 2]),
        extras=extras,
    )


def _context(backbone: str) -> LossContext:
    torch.manual_seed(0)
    model = build_model(BACKBONES[backbone], n_items=10)
    weight = 0.5 if backbone == "sasrec" else 0.0  # with the catalogue CE where there is one
    return LossContext(model=model, catalogue_ce_weight=weight, clock=TrainingClock(step=5))


def test_every_shipped_guidance_is_in_the_loops_registry():
    losses._load_plugins()
    assert set(known_guidances()) <= set(losses.GUIDANCES)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("name", known_guidances())
def test_a_guidance_builds_a_loss_that_keeps_the_contract(name, backbone):
    context = _context(backbone)
    model = context.model
    if (name, backbone) in REFUSES:
        with pytest.raises(TypeError):
            make_loss(name, {}, context)
        return
    loss_fn = make_loss(name, {}, context)
    assert isinstance(loss_fn, Loss) and isinstance(loss_fn, torch.nn.Module)
    assert isinstance(loss_fn.required_columns, tuple)
    assert all(isinstance(column, str) for column in loss_fn.required_columns)

    # The optimiser's parameters: the model's, in order, then the loss's own.
    model_names = [f"model.{n}" for n, _ in model.named_parameters()]
    names = {id(p): f"model.{n}" for n, p in model.named_parameters()}
    for n, p in loss_fn.named_parameters():
        names.setdefault(id(p), f"loss.{n}")
    extra = loss_fn.extra_parameters()
    optimised = [names[id(p)] for p in trainable_parameters(model, loss_fn)]
    assert optimised[: len(model_names)] == model_names
    assert optimised[len(model_names) :] == [names[id(p)] for p in extra]
    own = [p for p in loss_fn.parameters() if not names[id(p)].startswith("model.")]
    assert {id(p) for p in own} == {id(p) for p in extra}, "a loss parameter is never trained"
    # The recommender is not a submodule of the loss (its state would be checkpointed
    # twice and its train/eval mode set by the loss); a loss without parameters of
    # its own has an empty state.
    assert all(module is not model for module in loss_fn.modules())
    if not extra:
        assert loss_fn.state_dict() == {}

    loss_fn.to(torch.device("cpu"))
    loss_fn.train()
    batch = _batch(loss_fn.required_columns)
    loss = loss_fn(batch, model(batch.positives, batch.items, batch.state_index))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in trainable_parameters(model, loss_fn) if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("name", known_guidances())
def test_a_table_that_has_the_columns_passes_prepare_table_unchanged(name):
    loss_fn = make_loss(name, {}, _context("sasrec"))
    table = pd.DataFrame({"split": ["train"], "split_row": [0]})
    table = table.assign(**{column: [0.0] for column in loss_fn.required_columns})
    assert loss_fn.prepare_table(table) is table
