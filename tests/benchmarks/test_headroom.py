"""benchmarks/headroom.py: the validation cohort chooses a family's variant."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import pytest


@pytest.fixture(scope="module")
def headroom():
    return importlib.import_module("headroom")


def test_family_strips_only_the_variant_suffix(headroom):
    assert headroom.family_of("gru4rec-mtrec-beta0.3") == "gru4rec-mtrec"
    assert headroom.family_of("sasrec-mtrec") == "sasrec-mtrec"
    assert headroom.family_of("din-none") == "din-none"


def test_the_best_mean_validation_viewing_time_is_chosen_per_family(headroom):
    validation = {
        "gru4rec-none": {"0": {"viewing_time": 5.0}, "1": {"viewing_time": 7.0}},
        "gru4rec-mtrec-beta0.03": {"0": {"viewing_time": 9.0}, "1": {"viewing_time": 1.0}},
        "gru4rec-mtrec-beta0.3": {"0": {"viewing_time": 6.0}, "1": {"viewing_time": 6.0}},
        "sasrec-mtrec-beta3": {"0": {"viewing_time": 2.0}, "1": {"viewing_time": 2.0}},
    }
    selection = headroom.choose_variants(validation)
    assert selection["gru4rec-mtrec"]["chosen"] == "gru4rec-mtrec-beta0.3"  # 6.0 > 5.0 mean
    assert selection["gru4rec-mtrec"]["validation_viewing_time"]["gru4rec-mtrec-beta0.03"] == 5.0
    assert selection["sasrec-mtrec"]["chosen"] == "sasrec-mtrec-beta3"
    assert selection["gru4rec-none"]["chosen"] == "gru4rec-none"


def test_two_runs_chosen_variants_are_paired_seed_by_seed():
    compare = importlib.import_module("headroom_compare")

    def run(chosen, guided, base):
        metrics = compare.METRICS
        return {
            "validation_cohort": {"selection": {"gru4rec-mtrec": {"chosen": chosen}}},
            "per_seed": {
                chosen: {s: dict.fromkeys(metrics, v) for s, v in guided.items()},
                "gru4rec-none": {s: dict.fromkeys(metrics, v) for s, v in base.items()},
            },
        }

    base = {"0": 2.0, "1": 4.0, "2": 3.0}
    a = run("gru4rec-mtrec-beta10", {"0": 5.0, "1": 8.0, "2": 6.0}, base)
    b = run("gru4rec-mtrec-beta3", {"0": 4.0, "1": 6.0, "2": 5.0, "3": 9.0}, base | {"3": 1.0})
    out = compare.compare(a, b, "gru4rec-mtrec", "gru4rec-none")
    assert (out["a"], out["b"], out["seeds"]) == (
        "gru4rec-mtrec-beta10",
        "gru4rec-mtrec-beta3",
        ["0", "1", "2"],
    )
    entry = out["metrics"]["viewing_time"]
    # Differences 1, 2, 1: mean 4/3, sample std 1/sqrt(3), t(0.975, 2) = 4.303.
    assert entry["diff_mean"] == pytest.approx(4 / 3)
    half = 4.302653 * (1 / 3**0.5) / 3**0.5
    assert entry["interval"]["lower"] == pytest.approx(4 / 3 - half, rel=1e-5)
    assert out["base_max_relative_difference"] == 0.0
    b["per_seed"]["gru4rec-none"]["1"]["ctr"] = 5.0
    assert compare.compare(a, b, "gru4rec-mtrec", "gru4rec-none")[
        "base_max_relative_difference"
    ] == pytest.approx(0.2)
    with pytest.raises(SystemExit, match="no family"):
        compare.compare(a, b, "sasrec-mtrec", "sasrec-none")
