"""PNFRec: sequence helpers by hand, shapes, save/load, a short training run."""

from __future__ import annotations

import pytest
import torch

from mtrec.baselines.config import PNFRecConfig
from mtrec.baselines.pnfrec import PNFRec, negative_sequences, next_liked_slot
from mtrec.config import SASRecConfig
from mtrec.data.processed import load_processed
from mtrec.data.sequences import build_windows, window_loader
from mtrec.models import load_model, save_model

BACKBONE = SASRecConfig(max_history=8, dim=16, n_layers=1, n_heads=2, ffn_dim=32, dropout=0.0)


def test_negative_sequences_keep_order_and_the_last_ones():
    items = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 4, 0]])
    negative = torch.tensor([[True, False, True, True, False], [False, True, False, False, False]])
    sequences, rank = negative_sequences(items, negative, max_length=2)
    assert sequences.tolist() == [[7, 8], [2, 0]]
    assert rank.tolist() == [[-1, -1, 0, 1, -1], [-1, 0, -1, -1, -1]]
    sequences, _ = negative_sequences(items, negative, max_length=10)
    assert sequences.tolist() == [[5, 7, 8], [2, 0, 0]]


def test_next_liked_slot_is_strictly_after():
    liked = torch.tensor([[False, True, False, False, True, False]])
    assert next_liked_slot(liked).tolist() == [[1, 4, 4, 4, 6, 6]]


def _toy_batch():
    positives = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]])
    items = torch.tensor([[3, 9, 4, 5, 2], [8, 7, 6, 0, 0]])
    state_index = torch.tensor([[0, 1, 1, 2, 3], [0, 0, 1, 0, 0]])
    response = torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 0, 0, 0]])
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    rating = torch.tensor(
        [[5.0, float("nan"), 1.0, 4.0, float("nan")], [float("nan"), 2.0] + [float("nan")] * 3]
    )
    return positives, items, state_index, response, mask, rating


def test_terms_are_finite_and_the_contract_is_the_recommenders():
    torch.manual_seed(0)
    model = PNFRec(PNFRecConfig(), BACKBONE, n_items=10)
    positives, items, state_index, response, mask, rating = _toy_batch()
    terms = model.loss_terms(positives, items, state_index, response, mask, rating)
    assert set(terms) == {"bce", "ce_pos", "ce_neg", "contrast"}
    assert all(torch.isfinite(value) and value.ndim == 0 for value in terms.values())
    # Two disliked positives (item 4, row 0; item 7, row 1): only the first has a
    # liked positive after it, so the contrast is softplus(F(4|h) - F(5|h)) at slot 2.
    outputs = model(positives, items, state_index)
    expected = torch.nn.functional.softplus(
        outputs.logits[0, 2]
        - (model.recommender.logits_from_states(outputs.states[0, 2], torch.tensor(5)))
    )
    assert terms["contrast"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.score_all(positives).shape == (2, 11)
    assert model.score_items(positives, items).shape == (2, 5)
    assert outputs.logits.shape == (2, 5)
    loss = model.loss(positives, items, state_index, response, mask, rating)
    loss.backward()
    assert model.branch.negative_encoder.bos.grad is not None
    # The negative encoder shares the item embeddings and owns the rest.
    assert model.branch.negative_encoder.item_embedding is model.recommender.item_embedding
    extra = model.branch.extra_parameters(model.recommender)
    assert all(p is not model.recommender.item_embedding.weight for p in extra)
    assert len(extra) > 0


def test_saved_positive_encoder_loads_as_a_plain_sasrec(tmp_path):
    torch.manual_seed(1)
    model = PNFRec(PNFRecConfig(), BACKBONE, n_items=10).eval()
    history = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0]])
    save_model(model.recommender, tmp_path / "pnfrec", metadata={"guidance": "pnfrec"})
    loaded = load_model(tmp_path / "pnfrec", device="cpu")
    assert loaded.kind == "sasrec"
    assert torch.allclose(loaded.score_all(history), model.score_all(history))


def test_two_epochs_on_the_toy_log_lower_the_loss(toy_processed_dir):
    torch.manual_seed(0)
    data = load_processed(toy_processed_dir)
    windows = build_windows(data.train, max_history=8, extra_columns=["rating"])
    model = PNFRec(PNFRecConfig(), BACKBONE, data.n_items)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)

    def epoch_loss(train: bool, seed: int) -> float:
        total, batches = 0.0, 0
        model.train(train)
        for batch in window_loader(windows, batch_size=16, shuffle=train, seed=seed):
            loss = model.loss(
                batch.positives,
                batch.items,
                batch.state_index,
                batch.response,
                batch.mask,
                batch.extras["rating"],
            )
            if train:
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            total += loss.item()
            batches += 1
        return total / batches

    with torch.no_grad():
        before = epoch_loss(False, 0)
    for epoch in range(2):
        epoch_loss(True, epoch)
    with torch.no_grad():
        after = epoch_loss(False, 0)
    assert after < before - 0.1
