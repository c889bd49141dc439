import pytest
import torch

from mtrec.config import DINConfig, GRU4RecConfig, SASRecConfig
from mtrec.models import build_model, last_items, load_item_ids, load_model, save_model

N_ITEMS = 30
CONFIGS = {
    "sasrec": SASRecConfig(max_history=6, dim=8, n_layers=1, n_heads=2, ffn_dim=16, dropout=0.0),
    "gru4rec": GRU4RecConfig(max_history=6, dim=8, hidden_dim=12, dropout=0.0),
    "din": DINConfig(max_history=6, dim=8, attention_hidden=5, mlp_hidden=(10,), score_chunk=7),
}


def _model(kind: str):
    torch.manual_seed(0)
    return build_model(CONFIGS[kind], N_ITEMS).eval()


def _batch():
    positives = torch.tensor([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    items = torch.tensor([[3, 9, 5, 11, 0], [2, 8, 8, 30, 6]])
    state_index = torch.tensor([[0, 1, 1, 3, 0], [1, 2, 6, 6, 5]])
    return positives, items, state_index


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_shapes_of_every_output(kind):
    model = _model(kind)
    positives, items, state_index = _batch()
    out = model(positives, items, state_index)
    assert out.logits.shape == (2, 5)
    assert model.exposure_joint(positives, items, state_index).shape == (2, 5, model.joint_dim)
    assert model.joint_dim == 3 * 8
    assert model.item_embedding.num_embeddings == N_ITEMS + 1
    assert model.item_embedding.padding_idx == 0
    scores = model.score_all(positives)
    assert scores.shape == (2, N_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()
    if model.supports_catalogue:
        assert out.states.shape == (2, 5, 8)
        assert model.catalogue_logits(out.states).shape == (2, 5, N_ITEMS + 1)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_states_are_causal(kind):
    """An exposure's logit depends only on the positives before its state index."""
    model = _model(kind)
    positives, items, state_index = _batch()
    changed = positives.clone()
    changed[1, 3:] = torch.tensor([20, 21, 22])  # after position 3 of row 1
    before = model.exposure_logits(positives, items, state_index)
    after = model.exposure_logits(changed, items, state_index)
    early = state_index <= 3
    assert torch.allclose(before[early], after[early], atol=1e-5)
    assert not torch.allclose(before[~early], after[~early], atol=1e-5)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_full_ranking_equals_per_item_scoring(kind):
    model = _model(kind)
    history = torch.tensor([[4, 8, 15, 16, 23, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]])
    full = model.score_all(history)
    every_item = torch.arange(1, N_ITEMS + 1).expand(2, -1)
    per_item = model.score_items(history, every_item)
    assert torch.allclose(full[:, 1:], per_item, atol=1e-5)
    # score_all after the whole history == the exposure logit at the last state.
    short = last_items(history, model.max_history)
    state = (short > 0).sum(1, keepdim=True).expand(-1, 3)
    items = torch.tensor([[1, 2, 3], [4, 5, 6]])
    exposure = model.exposure_logits(short, items, state)
    assert torch.allclose(full.gather(1, items), exposure, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_save_load_round_trip_gives_identical_scores(kind, tmp_path):
    model = _model(kind)
    with torch.no_grad():  # move away from the initial weights
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    ids = [f"movie-{i}" for i in range(1, N_ITEMS + 1)]
    save_model(model, tmp_path / "m", item_ids=ids, metadata={"seed": 3})
    loaded = load_model(tmp_path / "m", device="cpu")
    history = torch.tensor([[4, 8, 15, 0], [1, 2, 3, 4]])
    assert loaded.kind == kind
    assert not loaded.training
    assert torch.equal(model.score_all(history), loaded.score_all(history))
    assert load_item_ids(tmp_path / "m") == ids


def test_last_items_keeps_the_most_recent_right_padded():
    history = torch.tensor([[1, 2, 3, 4, 5, 0], [7, 8, 0, 0, 0, 0]])
    assert last_items(history, 3).tolist() == [[3, 4, 5], [7, 8, 0]]
    assert last_items(history, 10) is history


def test_padding_embedding_is_zero_and_gets_no_gradient():
    model = _model("sasrec").train()
    positives, items, state_index = _batch()
    model(positives, items, state_index).logits.sum().backward()
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    assert torch.count_nonzero(model.item_embedding.weight.grad[0]) == 0
