"""The per-exposure reward table is read once, and only the columns training needs."""

from __future__ import annotations

import pandas as pd
import pytest

from mtrec.training.recommender import TABLE_KEYS, _reward_table_reader


def _table(path):
    frame = pd.DataFrame(
        {
            "split": ["train", "train", "valid"],
            "split_row": [0, 1, 0],
            "user_idx": [1, 1, 1],
            "item_idx": [3, 4, 5],
            "reward_pos_mean_z": [0.1, 0.2, 0.3],
            "reward_neg_mean_z": [0.0, -0.1, 0.1],
            "reward_pos_q01": [1.0, 2.0, 3.0],
        }
    )
    frame.to_parquet(path, index=False)
    return frame


def test_reads_the_keys_and_the_asked_columns_only_once(tmp_path):
    path = tmp_path / "rewards.parquet"
    frame = _table(path)
    read = _reward_table_reader(path, "gru4rec")
    columns = ("reward_pos_mean_z", "reward_neg_mean_z")
    table = read(columns)
    assert list(table.columns) == [*TABLE_KEYS, *columns]
    pd.testing.assert_frame_equal(table, frame[[*TABLE_KEYS, *columns]])
    assert read(columns) is table  # every seed gets the same frame


def test_reads_every_column_when_the_loss_derives_what_it_asks_for(tmp_path):
    path = tmp_path / "rewards.parquet"
    frame = _table(path)
    table = _reward_table_reader(path, "gru4rec")(("reward_pos_cvar0.3_z",))
    pd.testing.assert_frame_equal(table, frame)


def test_a_missing_table_says_which_stages_write_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="mtrec read-out-rewards --backbone sasrec"):
        _reward_table_reader(tmp_path / "none.parquet", "sasrec")(("reward_pos_mean_z",))
