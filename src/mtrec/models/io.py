"""Building, saving and loading recommenders (no training code needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import TypeAdapter
from torch import nn

from mtrec.config import DINConfig, GRU4RecConfig, ModelConfig, SASRecConfig
from mtrec.device import resolve_device
from mtrec.models.din import DINRecommender
from mtrec.models.dot import DotProductRecommender

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
ITEMS_FILE = "items.json"

Recommender = DotProductRecommender | DINRecommender

_MODEL_CONFIG = TypeAdapter(ModelConfig)


def parse_model_config(raw: dict) -> SASRecConfig | GRU4RecConfig | DINConfig:
    """A dict with a `kind` key -> the typed config of that backbone."""
    return _MODEL_CONFIG.validate_python(raw)


def build_model(config: SASRecConfig | GRU4RecConfig | DINConfig, n_items: int) -> Recommender:
    """A freshly initialised backbone (seed torch first for reproducibility)."""
    if isinstance(config, DINConfig):
        return DINRecommender(config, n_items)
    return DotProductRecommender(config, n_items)


def save_model(
    model: Recommender,
    path: str | Path,
    item_ids: Sequence[str] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write `weights.pt` + `config.json` (+ `items.json`: item_ids[i - 1] is
    the original id of item_idx i) into the directory `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, path / WEIGHTS_FILE)
    description = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "n_items": model.n_items,
        "model_config": model.config.model_dump(mode="json"),
        "metadata": metadata or {},
    }
    (path / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
    if item_ids is not None:
        if len(item_ids) != model.n_items:
            raise ValueError(
                f"item_ids has {len(item_ids)} entries, model has {model.n_items} items"
            )
        (path / ITEMS_FILE).write_text(json.dumps([str(i) for i in item_ids]) + "\n")
    return path


def read_model_description(path: str | Path) -> dict:
    return json.loads((Path(path) / CONFIG_FILE).read_text())


def load_model(path: str | Path, device: str | torch.device | None = None) -> Recommender:
    """Rebuild a saved recommender in eval mode on `device` (default: cuda if
    available, else cpu)."""
    path = Path(path)
    description = read_model_description(path)
    if description.get("format_version") != FORMAT_VERSION:
        version = description.get("format_version")
        raise ValueError(f"{path}: unsupported model format {version!r}")
    config = parse_model_config(description["model_config"])
    model = build_model(config, int(description["n_items"]))
    state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(resolve_device("auto" if device is None else device))
    model.eval()
    return model


def load_item_ids(path: str | Path) -> list[str] | None:
    """Original item ids saved with a model (index i - 1 -> item_idx i), if any."""
    file = Path(path) / ITEMS_FILE
    return json.loads(file.read_text()) if file.exists() else None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
