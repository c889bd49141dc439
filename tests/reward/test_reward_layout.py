"""One reward model per recommender backbone: its config and where it lives."""

from pathlib import Path

from mtrec.config import (
    DINConfig,
    GRU4RecConfig,
    RecommenderConfig,
    RewardConfig,
    RewardEncoders,
    SASRecConfig,
)
from mtrec.reward import reward_model_dir


def test_for_backbone_takes_that_kinds_encoder_sizes_and_keeps_the_rest():
    config = RewardConfig(
        encoders={"gru4rec": {"max_history": 20, "dim": 32, "hidden_dim": 64}},
        n_quantiles=7,
    )
    gru = config.for_backbone("gru4rec")
    assert gru.backbone == GRU4RecConfig(max_history=20, dim=32, hidden_dim=64)
    assert gru.n_quantiles == 7 and gru.encoders == config.encoders
    # A kind without sizes gets the default reward encoder of its kind (params.yaml's).
    assert config.for_backbone("sasrec").backbone == RewardEncoders().sasrec
    assert isinstance(config.for_backbone("sasrec").backbone, SASRecConfig)
    assert isinstance(config.for_backbone("din").backbone, DINConfig)


def test_reward_models_are_laid_out_per_backbone():
    assert reward_model_dir("models", "sasrec") == Path("models/reward/sasrec/qnetwork")
    assert reward_model_dir("m", "din", ablation=True) == Path("m/reward/din/irl")


def test_rewards_table_is_per_backbone_for_a_folder_and_shared_for_a_file():
    folder = RecommenderConfig(rewards_path="data/processed/rewards")
    assert folder.rewards_table("din") == Path("data/processed/rewards/din.parquet")
    single = RecommenderConfig(rewards_path="x/rewards.parquet")
    assert single.rewards_table("din") == Path("x/rewards.parquet")
    assert RecommenderConfig(rewards_path=None).rewards_table("din") is None
