"""The labelled guidance control (benchmarks/guidance_control.py): its reward
comes from train ratings only and replaces exactly the guidance's columns."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def control():
    return importlib.import_module("guidance_control")


def test_control_table_replaces_only_the_guidance_columns_z_scored_on_train(control):
    read_out = pd.DataFrame(
        {
            "split": ["train", "train", "train", "valid"],
            "item_idx": [1, 2, 3, 1],
            "reward_pos_mean_z": [9.0, 9.0, 9.0, 9.0],
            "reward_neg_mean_z": [7.0, 7.0, 7.0, 7.0],
            "reward_pos_cvar_z": [1.0, 2.0, 3.0, 4.0],
        }
    )
    item_reward = np.array([0.0, 1.0, 2.0, 3.0])
    table = control.control_table(read_out, item_reward)
    train = table["split"] == "train"
    assert table.loc[train, "reward_pos_mean_z"].mean() == pytest.approx(0.0, abs=1e-6)
    assert table.loc[train, "reward_pos_mean_z"].std(ddof=0) == pytest.approx(1.0, abs=1e-6)
    # Valid rows get the train statistics' z of their item (item 1, the lowest).
    assert table["reward_pos_mean_z"].iloc[3] == pytest.approx(table["reward_pos_mean_z"].iloc[0])
    assert (table["reward_neg_mean_z"] == 0).all()
    pd.testing.assert_series_equal(table["reward_pos_cvar_z"], read_out["reward_pos_cvar_z"])
    assert read_out["reward_pos_mean_z"].eq(9.0).all()  # the input is not altered


def test_beta_reaches_the_backbone_even_where_an_override_sets_it(control):
    from mtrec.config import load_params

    config = load_params("params.yaml").recommender
    assert "mtrec" in config.guidance_options_overrides["sasrec"]  # the case this guards
    for backbone in ("sasrec", "gru4rec", "din"):
        assert (
            control.with_beta(config, backbone, 2.5).options_for(backbone, "mtrec")["beta"] == 2.5
        )
    # Other backbones' overrides and other guidances are left as they were.
    changed = control.with_beta(config, "gru4rec", 2.5)
    assert changed.options_for("sasrec", "mtrec") == config.options_for("sasrec", "mtrec")
    assert (
        changed.guidance_options["proxy-continuation"]
        == config.guidance_options["proxy-continuation"]
    )
