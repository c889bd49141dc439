"""benchmarks/world_marginals.py: each marginal on a log computed by hand, the
simulated side on a tiny world, and the KuaiRand side through the project's source."""

import importlib
import json
from pathlib import Path

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import pytest
import yaml

from mtrec.config import SimulatorConfig
from mtrec.simulator.logging_policy import generate_log, log_statistics

ROOT = Path(__file__).resolve().parents[2]
KUAIRAND = ROOT / "tests/fixtures/kuairand_log_standard_4_08_to_4_21_pure.csv"
NAN = np.nan


@pytest.fixture(scope="module")
def wm():
    return importlib.import_module("world_marginals")


def hand_log() -> pd.DataFrame:
    """Three users, rows shuffled. With a 3600 s gap:
    a: [0, 60, 120, 3720] [7400]   (3720 - 120 = 3600 exactly: same session)
    b: [100] [5000, 5030, 5060]
    c: [50]
    plus one row of c with no timestamp (dropped)."""
    rows = [
        # user, item, timestamp, response, watch_ratio, true_reward
        ("b", "i5", 5030, 0, NAN, NAN),
        ("a", "i1", 0, 1, 0.1, -1.0),
        ("a", "i3", 3720, 1, 0.2, -0.5),
        ("c", "i9", 50, 0, NAN, NAN),
        ("a", "i2", 60, 0, NAN, NAN),
        ("b", "i4", 100, 1, 0.25, -2.0),
        ("a", "i2", 120, 1, 1.5, 0.8),
        ("b", "i6", 5060, 0, NAN, NAN),
        ("c", "i8", None, 1, 0.9, 0.3),
        ("a", "i4", 7400, 1, 0.5, 0.1),
        ("b", "i7", 5000, 1, 2.5, 1.2),
    ]
    return pd.DataFrame(
        rows,
        columns=["user_id", "item_id", "timestamp", "response", "watch_ratio", "true_reward"],
    )


def test_every_marginal_on_a_log_computed_by_hand(wm):
    m = wm.marginals(hand_log(), session_gap_seconds=3600, unit="s", disappointing_below=0.3)
    assert (m["rows"], m["rows_dropped"], m["users"], m["positives"]) == (10, 1, 3, 6)
    # exposures [5, 4, 1], positives [4, 2, 0]; p90 interpolates 0.8 of the way 2nd -> 3rd
    assert m["exposures_per_user"] == pytest.approx({"mean": 10 / 3, "median": 4, "p90": 4.8})
    assert m["positives_per_user"] == pytest.approx({"mean": 2, "median": 2, "p90": 3.6})
    assert m["ctr"] == pytest.approx(0.6)
    assert m["ctr_user_mean"] == pytest.approx((4 / 5 + 2 / 4 + 0) / 3)
    # sessions of 4, 1, 1, 3, 1 exposures
    assert m["sessions"] == 5
    assert m["sessions_per_user"] == pytest.approx(5 / 3)
    assert m["exposures_per_session"] == pytest.approx({"mean": 2, "median": 1, "p90": 3.6})
    # watch ratios of the positives: 0.1 0.2 0.25 0.5 1.5 2.5
    watch = m["watch_ratio_positives"]
    assert m["positives_with_watch_ratio"] == 6
    assert watch["mean"] == pytest.approx(5.05 / 6)
    assert watch["q50"] == pytest.approx(0.375)
    assert watch["q10"] == pytest.approx(0.15)
    assert watch["q90"] == pytest.approx(2.0)
    assert watch["share_above_1"] == pytest.approx(2 / 6)
    assert m["disappointing_click_share"] == pytest.approx(3 / 6)
    # continues: a@0 a@60 a@120 b@5000 b@5030 (5 of 10 rows)
    assert m["continuation_after_exposure"] == pytest.approx(0.5)
    # clicks: a@0 yes, a@120 yes, a@3720 no, a@7400 no, b@100 no, b@5000 yes
    assert m["continuation_after_click"] == pytest.approx(0.5)
    # disappointing a@0 yes, a@3720 no, b@100 no; others a@120 yes, a@7400 no, b@5000 yes
    assert m["continuation_after_disappointing_click"] == pytest.approx(1 / 3)
    assert m["continuation_after_other_click"] == pytest.approx(2 / 3)
    assert m["continuation_gap"] == pytest.approx(1 / 3)
    # rank differences -1 -1 2 0 0 0: rho = 1 - 6 * 6 / (6 * 35)
    assert m["positives_with_true_reward"] == 6
    assert m["spearman_watch_ratio_true_reward"] == pytest.approx(1 - 36 / 210)
    assert m["negative_true_reward_share"] == pytest.approx(0.5)


def test_millisecond_timestamps_split_at_the_same_gap(wm):
    log = hand_log()
    log["timestamp"] = log["timestamp"] * 1000
    in_ms = wm.marginals(log, unit="ms")
    assert in_ms == wm.marginals(hand_log(), unit="s")
    # Read as seconds, every 60 000-unit step is a pause: one session per row.
    assert wm.marginals(log, unit="s")["sessions"] == 10


def test_clicks_without_a_true_reward_are_left_out_of_the_truth_marginals(wm):
    log = hand_log()
    log.loc[(log["user_id"] == "b") & (log["timestamp"] == 5000), "true_reward"] = NAN
    m = wm.marginals(log)
    assert m["positives_with_true_reward"] == 5
    # five pairs, rank differences -1 -1 2 0 0: rho = 1 - 6 * 6 / (5 * 24)
    assert m["spearman_watch_ratio_true_reward"] == pytest.approx(0.7)
    assert m["negative_true_reward_share"] == pytest.approx(3 / 5)
    assert m["positives_with_watch_ratio"] == 6


def test_positive_only_logs_have_no_ctr_and_no_truth(wm):
    log = hand_log().drop(columns="true_reward")
    m = wm.marginals(log, logged_negatives=False)
    assert m["ctr"] is None and m["ctr_user_mean"] is None
    assert m["spearman_watch_ratio_true_reward"] is None
    assert m["negative_true_reward_share"] is None
    assert m["positives_with_true_reward"] == 0


TINY = dict(
    seed=3,
    n_users=40,
    n_items=60,
    n_topics=4,
    sessions_per_user=3,
    max_session_length=12,
    # Watch ratio a monotone function of the reward, and a disappointing click
    # (watch < 0.3 <=> reward < logit(0.15) / 1.5 = -1.156) always ends the session.
    watch_ratio_noise=0.0,
    disappointment_leave=1.0,
    truth_path="never/written.npz",
)


def test_simulated_side_on_a_tiny_world(wm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = SimulatorConfig(**TINY)
    table = wm.simulated_table(config)
    assert not (tmp_path / "never").exists()
    m = wm.marginals(table, session_gap_seconds=3600, unit="s", disappointing_below=0.3)
    frame = generate_log(config).frame
    stats = log_statistics(frame)
    assert m["rows"] == len(frame) and m["users"] == 40
    assert m["ctr"] == pytest.approx(stats["ctr"])
    assert m["negative_true_reward_share"] == pytest.approx(stats["negative_reward_click_share"])
    # Steps are 60 s apart and sessions a day apart: the gap finds the world's sessions.
    assert m["sessions"] == 40 * 3
    assert m["exposures_per_session"]["mean"] == pytest.approx(len(frame) / 120)
    assert m["exposures_per_session"]["p90"] <= 12
    watch = m["watch_ratio_positives"]
    assert 0 < watch["q10"] <= watch["q50"] <= watch["q90"] < 2
    assert m["spearman_watch_ratio_true_reward"] == pytest.approx(1.0)
    clicks = frame[frame["response"] == 1]
    disappointing = clicks["watch_ratio"] < 0.3
    assert disappointing.sum() > 5
    assert m["disappointing_click_share"] == pytest.approx(disappointing.mean())
    assert m["continuation_after_disappointing_click"] == 0.0
    assert m["continuation_after_other_click"] > 0.5
    # Every simulated click has a watch ratio: clicks = disappointing + other.
    share = m["disappointing_click_share"]
    assert m["continuation_after_click"] == pytest.approx(
        share * 0.0 + (1 - share) * m["continuation_after_other_click"]
    )


def test_the_command_writes_both_columns_side_by_side(wm, tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["simulator"].update({k: v for k, v in TINY.items() if k != "truth_path"})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    out = tmp_path / "marginals.json"
    argv = ["--params", str(params_file), "--source", "kuairand", "--path"]
    argv += [str(KUAIRAND.parent / "kuairand_log_standard_*.csv"), "--out", str(out)]
    wm.main(argv)
    result = json.loads(out.read_text())
    assert result["command"].startswith("python benchmarks/world_marginals.py --params")
    assert result["sources"]["kuairand"]["timestamp_unit"] == "s"  # the source converts
    assert result["sources"]["simulated"]["simulator"]["n_users"] == 40
    assert result["columns"]["simulated"]["users"] == 40
    # The KuaiRand column, from the raw file: watch ratio = play / duration of clicks.
    raw = pd.read_csv(KUAIRAND)
    clicks = raw[raw["is_click"] == 1]
    ratio = clicks["play_time_ms"] / clicks["duration_ms"]
    side = result["side_by_side"]
    assert side["ctr"]["kuairand"] == pytest.approx(raw["is_click"].mean())
    assert side["watch_ratio_positives.mean"]["kuairand"] == pytest.approx(ratio.mean())
    assert side["disappointing_click_share"]["kuairand"] == pytest.approx((ratio < 0.3).mean())
    # Each user's ten exposures are 30 s apart (time_ms): one session each.
    assert side["sessions"]["kuairand"] == raw["user_id"].nunique()
    assert side["spearman_watch_ratio_true_reward"]["kuairand"] is None
    assert side["sessions"]["simulated"] == 40 * 3
