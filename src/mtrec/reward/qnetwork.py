"""The QR-IQL Q-network: a recommender backbone plus a non-crossing quantile head.

The backbone is the one the guided recommender uses (`mtrec.models.build_model`,
same config class): its joint state-item representation
`exposure_joint(positives, items, state_index) -> [B, M, J]` feeds a quantile
head, so the mental reward model sees users the way the recommender does and
only the head differs.

Shape contract (B histories, L positives, M exposure slots, A actions, N quantiles):
    forward(positives [B, L] right-padded, items [B, M], state_index [B, M])
        -> lambda [B, M, A, N], non-crossing along N

A = 2 (skip, click), or 4 in the leave-aware MDP (`mtrec.reward.mdp.LEAVE_ACTIONS`:
skip-stay, click-stay, skip-leave, click-leave).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from mtrec.config import ModelConfig
from mtrec.models import build_model, parse_model_config
from mtrec.reward.inference import non_crossing

N_ACTIONS = 2  # the default action space: skip, click
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"


class QuantileHead(nn.Module):
    """Joint features [..., J] -> MLP -> non-crossing locations [..., A, N]."""

    def __init__(
        self,
        joint_dim: int,
        hidden: int,
        n_quantiles: int,
        dropout: float,
        n_actions: int = N_ACTIONS,
    ) -> None:
        super().__init__()
        self.n_quantiles = n_quantiles
        self.n_actions = n_actions
        self.mlp = nn.Sequential(
            nn.Linear(joint_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_actions * n_quantiles),
        )

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        raw = self.mlp(joint)  # [..., A N]
        return non_crossing(raw.unflatten(-1, (self.n_actions, self.n_quantiles)))


class RewardQNetwork(nn.Module):
    def __init__(
        self,
        backbone: ModelConfig,
        n_items: int,
        n_quantiles: int,
        head_hidden: int = 64,
        n_actions: int = N_ACTIONS,
    ) -> None:
        super().__init__()
        self.backbone_config = backbone
        self.n_items = n_items
        self.n_quantiles = n_quantiles
        self.head_hidden = head_hidden
        self.n_actions = n_actions
        self.max_history = backbone.max_history
        self.backbone = build_model(backbone, n_items)
        self.head = QuantileHead(
            self.backbone.joint_dim, head_hidden, n_quantiles, backbone.dropout, n_actions
        )

    def forward(
        self, positives: torch.Tensor, items: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        joint = self.backbone.exposure_joint(positives, items, state_index)  # [B, M, J]
        return self.head(joint)  # [B, M, A, N]

    def describe(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "backbone": self.backbone_config.model_dump(mode="json"),
            "n_items": self.n_items,
            "n_quantiles": self.n_quantiles,
            "head_hidden": self.head_hidden,
            "n_actions": self.n_actions,
        }


def save_qnetwork(network: RewardQNetwork, folder: Path, extra: dict | None = None) -> Path:
    """Weights plus the config that rebuilds them (loadable without training code)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    description = {**network.describe(), "metadata": extra or {}}
    (folder / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return folder


def read_qnetwork_description(folder: Path) -> dict:
    return json.loads((Path(folder) / CONFIG_FILE).read_text())


def load_qnetwork(folder: Path, device: torch.device | str = "cpu") -> RewardQNetwork:
    description = read_qnetwork_description(folder)
    if description.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder}: unsupported Q-network format {description.get('format_version')!r}"
        )
    network = RewardQNetwork(
        parse_model_config(description["backbone"]),
        n_items=int(description["n_items"]),
        n_quantiles=int(description["n_quantiles"]),
        head_hidden=int(description["head_hidden"]),
        # Models saved before the leave-aware MDP have the two response actions.
        n_actions=int(description.get("n_actions", N_ACTIONS)),
    )
    state = torch.load(Path(folder) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    return network.to(device).eval()


# The training log's display distribution over items ([n_items + 1], index 0 = 0):
# where the expected-next-value read-out draws the next displayed item i' from,
# saved with the model so that serving draws from the same distribution.
NEXT_ITEMS_FILE = "next_items.pt"


def save_next_item_distribution(folder: Path, probabilities: torch.Tensor) -> Path:
    path = Path(folder) / NEXT_ITEMS_FILE
    torch.save(probabilities.detach().cpu().to(torch.float64), path)
    return path


def load_next_item_distribution(folder: Path) -> torch.Tensor | None:
    """The saved distribution, or None for a model saved without one."""
    path = Path(folder) / NEXT_ITEMS_FILE
    return torch.load(path, weights_only=True) if path.exists() else None
