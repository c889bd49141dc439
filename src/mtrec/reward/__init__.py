"""MTRec's mental reward model: the user-centric MDP, QR-IQL, and the reward read-out.

- `mdp`: the exposure log as a user-centric MDP in flat tensor form.
- `losses`: QR-IQL and the plain chi^2 IQ-Learn ("-IRL") objectives (pure tensor functions).
- `qnetwork`: a recommender backbone plus a non-crossing quantile head.
- `train`: `train_reward` (fit, early stop on validation loss, save).
- `readout`: `read_out_rewards` (rewards for every exposure, summaries, plot data).
- `alignment`: the MTRec alignment loss for guided recommenders.

One reward model per recommender backbone (its encoder has the architecture of
the recommender it guides), laid out by `reward_model_dir`.
"""

from pathlib import Path

QNETWORK = "qnetwork"
IRL_ABLATION = "irl"


def reward_model_dir(models: str | Path, backbone: str, ablation: bool = False) -> Path:
    """<models>/reward/<backbone>/qnetwork (QR-IQL) or .../irl (the -IRL ablation)."""
    return Path(models) / "reward" / backbone / (IRL_ABLATION if ablation else QNETWORK)
