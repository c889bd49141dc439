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
