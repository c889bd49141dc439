import math

import pytest

from mtrec.evaluation.stats import aggregate_seeds, format_mean_std, mean_std, paired_comparison


def test_mean_std_uses_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}


def test_mean_std_single_seed_has_nan_std_and_no_seed_nan_mean():
    single = mean_std([5.0])
    assert single["mean"] == 5.0 and math.isnan(single["std"]) and single["n"] == 1
    empty = mean_std([])
    assert math.isnan(empty["mean"]) and empty["n"] == 0


def test_mean_std_skips_nan_seeds():
    summary = mean_std([1.0, float("nan"), 3.0])
    assert summary["mean"] == pytest.approx(2.0)
    assert summary["std"] == pytest.approx(math.sqrt(2.0))
    assert summary["n"] == 2


def test_paired_comparison_hand_computed():
    # diffs [1, 0, 2, 3]: mean 1.5, sample var 5/3, t = 1.5 / (sqrt(5/3) / 2)
    result = paired_comparison([1, 2, 3, 4], [0, 2, 1, 1])
    assert result["diff_mean"] == pytest.approx(1.5)
    assert result["diff_std"] == pytest.approx(math.sqrt(5 / 3))
    assert result["t"] == pytest.approx(1.5 / (math.sqrt(5 / 3) / 2))
    # two-sided p for t = 2.3238 with 3 degrees of freedom (t tables: 0.05 < p < 0.2)
    assert 0.05 < result["p_value"] < 0.2
    assert result["n"] == 4


def test_paired_comparison_one_seed_has_nan_test():
    result = paired_comparison([0.3], [0.1])
    assert result["diff_mean"] == pytest.approx(0.2)
    assert math.isnan(result["diff_std"]) and math.isnan(result["t"])
    assert math.isnan(result["p_value"]) and result["n"] == 1


def test_paired_comparison_drops_pairs_with_nan_and_rejects_mismatch():
    assert paired_comparison([1, float("nan"), 3], [0, 1, 1])["n"] == 2
    with pytest.raises(ValueError):
        paired_comparison([1, 2], [1, 2, 3])


def test_aggregate_seeds_unions_keys_and_counts_missing():
    summary = aggregate_seeds([{"HR@10": 0.1, "NDCG@10": 0.2}, {"HR@10": 0.3}])
    assert list(summary) == ["HR@10", "NDCG@10"]
    assert summary["HR@10"]["mean"] == pytest.approx(0.2)
    assert summary["HR@10"]["std"] == pytest.approx(math.sqrt(0.02))
    assert summary["NDCG@10"]["n"] == 1 and math.isnan(summary["NDCG@10"]["std"])


def test_aggregate_seeds_rejects_non_numeric_values():
    with pytest.raises(ValueError):
        aggregate_seeds([{"model": "sasrec"}])


def test_format_mean_std():
    assert format_mean_std({"mean": 0.12345, "std": 0.01, "n": 3}) == "0.1235 ± 0.0100 (n=3)"
