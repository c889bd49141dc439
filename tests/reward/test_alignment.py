from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtrec.config import SASRecConfig
from mtrec.data.sequences import WindowBatch
from mtrec.models import build_model
from mtrec.reward.alignment import GUIDANCE_COLUMNS, alignment_loss
from mtrec.reward.readout import cvar_columns
from mtrec.training import LossContext, make_loss


def test_alignment_loss_hand_computed():
    probability = torch.tensor([[0.8, 0.5, 0.1]])
    positive = torch.tensor([[1.0, -2.0, 3.0]])
    negative = torch.tensor([[0.0, 1.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    # slot 1: 0.8*1 + 0.2*0 = 0.8; slot 2: 0.5*-2 + 0.5*1 = -0.5; slot 3 masked
    value = alignment_loss(probability, positive, negative, mask)
    assert value.item() == pytest.approx(-(0.8 - 0.5) / 2)


def test_alignment_pushes_probability_toward_the_better_action():
    logits = torch.zeros(1, 2, requires_grad=True)
    positive = torch.tensor([[2.0, -2.0]])
    negative = torch.tensor([[0.0, 0.0]])
    alignment_loss(
        torch.sigmoid(logits), positive, negative, torch.ones(1, 2, dtype=torch.bool)
    ).backward()
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]  # descent raises slot 0, lowers slot 1


@pytest.mark.parametrize("guidance", sorted(GUIDANCE_COLUMNS))
def test_guidances_are_registered_and_read_their_columns(guidance):
    torch.manual_seed(0)
    model = build_model(SASRecConfig(max_history=3, dim=8, n_layers=1, n_heads=1, ffn_dim=8), 6)
    loss = make_loss(guidance, {"beta": 0.5}, LossContext(model=model))
    positive_column, negative_column = GUIDANCE_COLUMNS[guidance]
    assert loss.required_columns == (positive_column, negative_column)
    batch = WindowBatch(
        positives=torch.tensor([[1, 2, 0]]),
        items=torch.tensor([[3, 4]]),
        state_index=torch.tensor([[1, 2]]),
        response=torch.tensor([[1.0, 0.0]]),
        mask=torch.tensor([[True, True]]),
        row=torch.tensor([[0, 1]]),
        user_idx=torch.tensor([1]),
        extras={
            positive_column: torch.tensor([[1.0, 2.0]]),
            negative_column: torch.tensor([[0.0, -1.0]]),
        },
    )
    outputs = model(batch.positives, batch.items, batch.state_index)
    bce_only = make_loss("none", {}, LossContext(model=model))(batch, outputs)
    expected_align = alignment_loss(
        torch.sigmoid(outputs.logits),
        batch.extras[positive_column],
        batch.extras[negative_column],
        batch.mask,
    )
    assert loss(batch, outputs).item() == pytest.approx(
        (bce_only + 0.5 * expected_align).item(), rel=1e-5
    )


def test_alignment_options_are_validated():
    model = build_model(SASRecConfig(max_history=3, dim=8, n_layers=1, n_heads=1, ffn_dim=8), 6)
    with pytest.raises(ValueError):
        make_loss("mtrec", {"betta": 0.5}, LossContext(model=model))


def test_cvar_level_q_is_an_option_of_mtrec_cvar_only():
    model = build_model(SASRecConfig(max_history=3, dim=8, n_layers=1, n_heads=1, ffn_dim=8), 6)
    context = LossContext(model=model)
    default = make_loss("mtrec-cvar", {"beta": 0.5}, context)
    assert default.required_columns == GUIDANCE_COLUMNS["mtrec-cvar"]
    table = pd.DataFrame({"split": ["train"] * 2, "reward_pos_cvar_z": 0.0})
    assert default.prepare_table(table) is table  # the read-out's column, nothing derived
    tuned = make_loss("mtrec-cvar", {"beta": 0.5, "q": 0.5}, context)
    assert tuned.required_columns == cvar_columns(0.5)
    table = pd.DataFrame(
        {
            "split": ["train", "train"],
            "reward_pos_q01": [1.0, -3.0],
            "reward_pos_q02": [3.0, 1.0],
            "reward_neg_q01": [0.0, 0.0],
            "reward_neg_q02": [0.0, 0.0],
        }
    )
    prepared = tuned.prepare_table(table)
    # CVaR_0.5 of two quantiles = the lower one: pos [1, -3], neg [0, 0]; pooled
    # over [1, -3, 0, 0]: mean -0.5, std sqrt((1.5^2 + 2.5^2 + 2 * 0.5^2) / 4) = 1.5
    np.testing.assert_allclose(prepared[cvar_columns(0.5)[0]], [1.0, -2.5 / 1.5])
    np.testing.assert_allclose(prepared[cvar_columns(0.5)[1]], [0.5 / 1.5, 0.5 / 1.5])
    with pytest.raises(ValueError):
        make_loss("mtrec", {"beta": 0.5, "q": 0.5}, context)
    with pytest.raises(ValueError):
        make_loss("mtrec-cvar", {"q": 0.0}, context)
