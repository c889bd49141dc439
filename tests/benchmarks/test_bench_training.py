"""The comparison arithmetic of the side-by-side benchmark (no training here:
the benchmark itself takes minutes per epoch and runs by hand)."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path: the script imports `common`)
import pytest


@pytest.fixture(scope="module")
def bench():
    return importlib.import_module("bench_training")


def side(**overrides):
    result = {
        "model": "SASRec",
        "torch_threads": 1,
        "device": "cpu",
        "epochs_run": 30,
        "stopped_early": True,
        "seconds_per_epoch": 10.0,
        "peak_rss_mib": 500.0,
        "test_ndcg_at_10": 0.06,
        "test_recall_at_10": 0.14,
        "valid_ndcg_at_10": 0.07,
    }
    return result | overrides


def test_speedup_and_memory_ratios(bench):
    row = bench.compare_sides(
        side(seconds_per_epoch=120.0, peak_rss_mib=900.0),
        side(seconds_per_epoch=8.0, peak_rss_mib=600.0),
    )
    assert row["speedup_recbole_over_mtrec"] == pytest.approx(15.0)
    assert row["peak_rss_ratio_recbole_over_mtrec"] == pytest.approx(1.5)
    assert row["seconds_per_epoch"] == {"recbole": 120.0, "mtrec": 8.0}


def test_quality_reported_only_when_both_sides_converged(bench):
    converged = bench.compare_sides(side(), side(test_ndcg_at_10=0.05))
    assert converged["converged"] is True
    assert converged["quality"]["test_ndcg_at_10"] == {"recbole": 0.06, "mtrec": 0.05}
    budget_only = bench.compare_sides(side(stopped_early=False), side())
    assert budget_only["converged"] is False and budget_only["quality"] is None
    assert budget_only["quality_after_budget"]["test_recall_at_10"]["mtrec"] == 0.14


def test_sides_must_match_model_and_threads(bench):
    with pytest.raises(ValueError):
        bench.compare_sides(side(), side(model="GRU4Rec"))
    with pytest.raises(ValueError):
        bench.compare_sides(side(), side(torch_threads=2))


def test_cpu_ratio_when_both_sides_report_cpu_time(bench):
    key = "cpu_seconds_per_epoch_incl_validation"
    row = bench.compare_sides(side(**{key: 90.0}), side(**{key: 30.0}))
    assert row["cpu_ratio_recbole_over_mtrec"] == pytest.approx(3.0)
    missing = bench.compare_sides(side(), side(**{key: 30.0}))
    assert missing["cpu_ratio_recbole_over_mtrec"] != missing["cpu_ratio_recbole_over_mtrec"]


def test_time_to_quality_is_the_first_epoch_reaching_the_target(bench):
    curve = [
        {"epoch": 1, "test_ndcg_at_10": 0.03},
        {"epoch": 2, "test_ndcg_at_10": 0.065},
        {"epoch": 3, "test_ndcg_at_10": 0.07},
    ]
    reached = bench.time_to_quality([1.5, 3.0, 4.5], curve, 0.0637, cpu_clock=[1.0, 2.0, 3.0])
    assert reached == {"target": 0.0637, "epoch": 2, "seconds": 3.0, "cpu_seconds": 2.0}
    missed = bench.time_to_quality([1.5, 3.0, 4.5], curve, 0.08)
    assert missed["epoch"] is None and missed["seconds"] is None
    # The same rule on another key (validation, what a recipe may be chosen by).
    valid = [{"epoch": p["epoch"], "valid_ndcg_at_10": 0.1 - p["test_ndcg_at_10"]} for p in curve]
    first = bench.time_to_quality([1.5, 3.0, 4.5], valid, 0.05, key="valid_ndcg_at_10")
    assert first["epoch"] == 1 and first["seconds"] == 1.5


def test_the_clock_leaves_out_the_test_curves_that_ran_before_each_epoch_end(bench):
    # Epoch ends read at 10, 25, 40 s after a start at 0; the curve took 3 s after
    # epoch 1 and 4 s after epoch 2 (cumulative 3, 7, then 12 after epoch 3).
    clock = bench.clock_without_curve([10.0, 25.0, 40.0], 0.0, [3.0, 7.0, 12.0])
    assert clock == [10.0, 22.0, 33.0]
    assert bench.clock_without_curve([10.0, 25.0], 0.0, []) == [10.0, 25.0]


def test_cpu_to_quality_against_recbole(bench):
    mtrec = side(torch_threads=1, time_to_reference_test_ndcg={"cpu_seconds": 100.0})
    recbole = side(torch_threads=1, cpu_seconds_per_epoch_incl_validation=300.0)
    row = bench.cpu_to_quality_against_recbole(mtrec, recbole)
    assert row["recbole_cpu_seconds_estimated"] == 300.0 * bench.RECBOLE_EPOCHS_TO_QUALITY["SASRec"]
    assert row["ratio_recbole_over_mtrec"] == pytest.approx(
        3.0 * bench.RECBOLE_EPOCHS_TO_QUALITY["SASRec"]
    )
    with pytest.raises(ValueError):
        bench.cpu_to_quality_against_recbole(mtrec, side(torch_threads=2))
