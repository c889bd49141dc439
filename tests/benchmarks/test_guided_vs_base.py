"""benchmarks/guided_vs_base.py: the paired t-interval over seeds."""

import importlib
import math

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import pytest
from scipy import stats


@pytest.fixture(scope="module")
def guided_vs_base():
    return importlib.import_module("guided_vs_base")


def test_the_interval_is_the_paired_t_interval_on_the_shared_seeds(guided_vs_base):
    guided = {"0": 0.12, "1": 0.10, "2": 0.14, "9": 0.50}  # seed 9 has no pair: dropped
    base = {"0": 0.10, "1": 0.10, "2": 0.11}
    row = guided_vs_base.paired(guided, base, 0.95)
    assert row["seeds"] == ["0", "1", "2"]
    diffs = [0.02, 0.0, 0.03]
    mean = sum(diffs) / 3
    sd = stats.tstd(diffs)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert row["diff_mean"] == pytest.approx(mean)
    assert row["interval"]["lower"] == pytest.approx(mean - half)
    assert row["interval"]["upper"] == pytest.approx(mean + half)
    assert row["relative_gain"] == pytest.approx(mean / (0.31 / 3))
    assert row["p_value"] == pytest.approx(stats.ttest_rel([0.12, 0.10, 0.14], [0.1, 0.1, 0.11])[1])


def test_one_seed_gives_no_interval(guided_vs_base):
    row = guided_vs_base.paired({"0": 0.2}, {"0": 0.1}, 0.95)
    assert row["diff_mean"] == pytest.approx(0.1)
    assert math.isnan(row["interval"]["lower"]) and math.isnan(row["interval"]["upper"])


def test_a_negative_base_keeps_the_sign_of_the_difference(guided_vs_base):
    # A reward per item shown below 0: the guided side is higher, the gain is positive.
    row = guided_vs_base.paired(
        {"0": -0.02, "1": 0.01, "2": -0.04}, {"0": -0.1, "1": -0.08, "2": -0.09}, 0.95
    )
    assert row["diff_mean"] > 0
    assert row["relative_gain"] > 0
    assert (
        row["relative_interval"]["lower"]
        <= row["relative_gain"]
        <= row["relative_interval"]["upper"]
    )
