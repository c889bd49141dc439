"""Hand-computed checks of the metric functions (values worked out in the
comments, not by calling another implementation)."""

import math

import numpy as np
import pytest

from mtrec.evaluation.metrics import (
    auc,
    gauc,
    interval_coverage,
    ncis,
    ncis_lift,
    ranking_metrics,
    satisfaction_split,
    spearman,
    target_ranks,
)

# ----------------------------------------------------------------------- AUC


def test_auc_counts_correctly_ordered_pairs():
    # pairs (pos, neg): (.9,.8) ok, (.9,.1) ok, (.3,.8) wrong, (.3,.1) ok -> 3/4
    assert auc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(0.75)


def test_auc_ties_count_one_half():
    assert auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    # (.7 vs .5) = 1, (.5 vs .5) = 1/2 -> 0.75
    assert auc([1, 1, 0], [0.7, 0.5, 0.5]) == pytest.approx(0.75)


def test_auc_reversed_scores_give_zero():
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.0)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_auc_is_nan_without_both_classes(labels):
    assert math.isnan(auc(labels, np.linspace(0, 1, len(labels))))


def test_auc_rejects_non_binary_labels_and_length_mismatch():
    with pytest.raises(ValueError):
        auc([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        auc([1, 0], [0.1, 0.2, 0.3])


# ---------------------------------------------------------------------- GAUC

# user a: [1, 0] scores [.9, .1] -> AUC 1, 2 exposures
# user b: [1, 0, 0, 0] scores [.2, .5, .1, .0] -> beats 2 of 3 -> 2/3, 4 exposures
# user c: [1, 1] -> one class only, left out
GAUC_USERS = ["a", "a", "b", "b", "b", "b", "c", "c"]
GAUC_LABELS = [1, 0, 1, 0, 0, 0, 1, 1]
GAUC_SCORES = [0.9, 0.1, 0.2, 0.5, 0.1, 0.0, 0.3, 0.3]


def test_gauc_weights_users_by_exposures_by_default():
    # (2 * 1 + 4 * 2/3) / 6 = 7/9
    assert gauc(GAUC_USERS, GAUC_LABELS, GAUC_SCORES) == pytest.approx(7 / 9)


def test_gauc_unweighted_is_plain_mean_over_users():
    assert gauc(GAUC_USERS, GAUC_LABELS, GAUC_SCORES, weighting="users") == pytest.approx(5 / 6)


def test_gauc_does_not_depend_on_row_order():
    order = np.random.default_rng(0).permutation(len(GAUC_USERS))
    shuffled = [np.asarray(column)[order] for column in (GAUC_USERS, GAUC_LABELS, GAUC_SCORES)]
    assert gauc(*shuffled) == pytest.approx(7 / 9)


def test_gauc_ranks_within_users_not_globally():
    # Within each user the positive wins, though globally user y's positive
    # scores below user x's negative: GAUC 1, global AUC below 1.
    users, labels, scores = [1, 1, 2, 2], [1, 0, 1, 0], [0.9, 0.8, 0.5, 0.1]
    assert gauc(users, labels, scores) == pytest.approx(1.0)
    assert auc(labels, scores) < 1.0


def test_gauc_is_nan_when_no_user_has_both_classes():
    assert math.isnan(gauc([1, 1, 2], [1, 1, 0], [0.1, 0.2, 0.3]))


# ---------------------------------------------------------------------- NCIS

# u1: labels [1, 0], p [.8, .4] -> rho = .8 * .6 = .48, G = 1
# u2: labels [1, 1], p [.5, .5] -> rho = .25, G = 2
# u3: labels [0],    p [.9]     -> rho = .1,  G = 0
NCIS_USERS = [1, 1, 2, 2, 3]
NCIS_LABELS = [1, 0, 1, 1, 0]
NCIS_PROBS = [0.8, 0.4, 0.5, 0.5, 0.9]
MEAN_RHO = (0.48 + 0.25 + 0.1) / 3


def test_ncis_without_binding_cap_is_rho_weighted_mean_gain():
    # w proportional to rho: (.48 * 1 + .25 * 2 + .1 * 0) / .83
    assert ncis(NCIS_USERS, NCIS_LABELS, NCIS_PROBS, cap=10.0) == pytest.approx(0.98 / 0.83)


def test_ncis_cap_clips_the_largest_weight():
    # rho / mean: 1.735 (capped to 1.5), .25 / mean, .1 / mean
    weights = np.array([1.5, 0.25 / MEAN_RHO, 0.1 / MEAN_RHO])
    expected = (weights * [1, 2, 0]).sum() / weights.sum()
    assert ncis(NCIS_USERS, NCIS_LABELS, NCIS_PROBS, cap=1.5) == pytest.approx(expected)


def test_ncis_tiny_cap_gives_equal_weights():
    assert ncis(NCIS_USERS, NCIS_LABELS, NCIS_PROBS, cap=1e-9) == pytest.approx(1.0)


def test_ncis_survives_trajectories_whose_product_underflows():
    # A: 2000 positives at p = .5 (rho = 2^-2000, zero in float64);
    # B: 1000 positives at .5 and 1000 negatives at p = .75 -> rho_B << rho_A.
    # So rho_A / mean = 2, w_B ~ 0 and NCIS ~ G_A = 2000.
    users = np.array(["A"] * 2000 + ["B"] * 2000)
    labels = np.array([1] * 2000 + [1] * 1000 + [0] * 1000)
    probs = np.array([0.5] * 3000 + [0.75] * 1000)
    assert np.prod(probs[:2000]) == 0.0
    assert ncis(users, labels, probs, cap=10.0) == pytest.approx(2000.0)


def test_ncis_certain_miss_is_clipped_not_infinite():
    value = ncis([1, 2], [1, 1], [0.0, 0.5], cap=10.0)
    assert value == pytest.approx(1.0)  # user 1's weight ~0, user 2 has G = 1


def test_ncis_lift_subtracts_baseline():
    baseline = [0.5] * 5
    expected = 0.98 / 0.83 - ncis(NCIS_USERS, NCIS_LABELS, baseline, cap=10.0)
    assert ncis_lift(NCIS_USERS, NCIS_LABELS, NCIS_PROBS, baseline, cap=10.0) == pytest.approx(
        expected
    )
    # Untrained model: rho = .5^2, .5^2, .5 -> weights .25, .25, .5 -> (.25 + .5) / 1
    assert ncis(NCIS_USERS, NCIS_LABELS, baseline, cap=10.0) == pytest.approx(0.75)


def test_ncis_is_nan_on_empty_input_and_rejects_bad_cap():
    assert math.isnan(ncis([], [], [], cap=10.0))
    with pytest.raises(ValueError):
        ncis([1], [1], [0.5], cap=0.0)


# ------------------------------------------------------------------- ranking


def test_target_ranks_masks_history_and_padding():
    # user 0: padding scores 9 (ignored); target item 3 (.3); item 4 (.9) is
    # history -> only item 2 (.5) is above -> rank 2; unmasked it would be 3.
    scores = np.array([[9.0, 0.1, 0.5, 0.3, 0.9]])
    history = np.array([[False, False, False, False, True]])
    assert target_ranks(scores, [3], history).tolist() == [2.0]
    assert target_ranks(scores, [3]).tolist() == [3.0]


def test_target_ranks_never_masks_the_target_itself():
    scores = np.array([[0.0, 0.1, 0.5, 0.3, 0.9]])
    history = np.array([[False, False, True, True, True]])  # target 3 in history
    assert target_ranks(scores, [3], history).tolist() == [1.0]


@pytest.mark.parametrize(
    ("ties", "expected"), [("pessimistic", 3.0), ("average", 2.0), ("optimistic", 1.0)]
)
def test_target_ranks_tie_rules(ties, expected):
    # target item 2 ties with items 1 and 3 at .2; item 4 is below.
    scores = np.array([[0.0, 0.2, 0.2, 0.2, 0.1]])
    assert target_ranks(scores, [2], ties=ties).tolist() == [expected]


def test_constant_scores_rank_every_target_last_by_default():
    scores = np.zeros((3, 11))
    assert target_ranks(scores, [1, 5, 10]).tolist() == [10.0, 10.0, 10.0]


def test_target_ranks_rejects_padding_target_and_bad_mask_shape():
    with pytest.raises(ValueError):
        target_ranks(np.zeros((1, 5)), [0])
    with pytest.raises(ValueError):
        target_ranks(np.zeros((1, 5)), [1], np.zeros((1, 4), dtype=bool))


def test_ranking_metrics_hand_computed():
    metrics = ranking_metrics([1, 3, 7, 30], ks=(5, 10))
    assert metrics["HR@5"] == pytest.approx(0.5)
    assert metrics["NDCG@5"] == pytest.approx((1 + 1 / 2) / 4)  # 1/log2(4) = 1/2
    assert metrics["MRR@5"] == pytest.approx((1 + 1 / 3) / 4)
    assert metrics["HR@10"] == pytest.approx(0.75)
    assert metrics["NDCG@10"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 4)  # 1/log2(8) = 1/3
    assert metrics["MRR@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert set(metrics) == {f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in (5, 10)}


def test_ranking_metrics_default_ks_and_nan_when_empty():
    assert set(ranking_metrics([1.0])) == {
        f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in (5, 10, 20)
    }
    assert all(math.isnan(value) for value in ranking_metrics([]).values())


def test_ranking_metrics_rejects_rank_zero():
    with pytest.raises(ValueError):
        ranking_metrics([0, 1])


def test_satisfaction_split_hand_computed():
    ranks = [1, 3, 20, 2, 5]
    satisfied = [1.0, 1.0, 0.0, 0.0, np.nan]  # the last user counts nowhere
    split = satisfaction_split(ranks, satisfied, ks=(10,))
    assert split["HR_p@10"] == pytest.approx(1.0)
    assert split["NDCG_p@10"] == pytest.approx((1 + 1 / 2) / 2)
    assert split["HR_n@10"] == pytest.approx(0.5)
    assert split["NDCG_n@10"] == pytest.approx((0 + 1 / math.log2(3)) / 2)
    assert split["dNDCG@10"] == pytest.approx(0.75 - 0.5 / math.log2(3))
    assert (split["n_p"], split["n_n"]) == (2.0, 2.0)


def test_satisfaction_split_empty_group_is_nan():
    split = satisfaction_split([1, 2], [1.0, 1.0], ks=(10,))
    assert split["HR_p@10"] == pytest.approx(1.0)
    assert math.isnan(split["HR_n@10"]) and math.isnan(split["NDCG_n@10"])
    assert math.isnan(split["dNDCG@10"])


# ------------------------------------------------------------ reward checks


def test_spearman_hand_computed():
    # ranks of y: 1, 2, 4, 3 -> sum d^2 = 2 -> 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)


def test_spearman_is_nan_when_undefined():
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(spearman([1], [2]))


def test_interval_coverage_closed_intervals():
    # .5 in [0, 1]; 3 not in [0, 2]; 1 in [1, 2] (boundary counts)
    assert interval_coverage([0, 0, 1], [1, 2, 2], [0.5, 3, 1]) == pytest.approx(2 / 3)


def test_interval_coverage_nan_when_empty_and_rejects_crossed_bounds():
    assert math.isnan(interval_coverage([], [], []))
    with pytest.raises(ValueError):
        interval_coverage([2], [1], [1.5])


def test_average_ranks_are_scipys_bit_for_bit():
    """AUC ranks with numpy, not scipy.stats (0.4 s to import per stage): the
    same float64 ranks as scipy's rankdata(method="average") on ties, signed
    zeros, infinities, NaN (all NaN) and empty input, so no metric moves."""
    from scipy import stats

    from mtrec.evaluation.metrics import average_ranks

    rng = np.random.default_rng(0)
    cases = [np.zeros(0), np.array([3.0]), np.array([0.0, -0.0, 1.0, -0.0])]
    cases.append(np.array([np.inf, -np.inf, 2.0, np.inf]))
    cases.append(np.array([1.0, np.nan, 0.5]))
    for trial in range(200):
        n = int(rng.integers(1, 300))
        if trial % 2:
            cases.append(rng.integers(0, int(rng.integers(1, 20)), n).astype(float))
        else:
            cases.append(rng.normal(size=n))
    for values in cases:
        ours, theirs = average_ranks(values), stats.rankdata(values, method="average")
        assert ours.dtype == theirs.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    assert average_ranks([2.0, 1.0, 2.0, 5.0]).tolist() == [2.5, 1.0, 2.5, 4.0]
