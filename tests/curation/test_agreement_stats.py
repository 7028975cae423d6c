"""The coefficients against the reference packages and the published worked examples.

krippendorff, statsmodels and scipy are test-only references; the app computes with its own
numpy code (curation/agreement/stats.py).
"""

import krippendorff
import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

from curation.agreement import stats

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1..5, blanks missing. Published: nominal .743, ordinal .815, interval .849.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)
# Fleiss (1971), table 1: 30 patients, 6 psychiatrists each, 5 diagnoses. Published kappa .430.
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]
)  # fmt: skip


def long_form(matrix):
    """Raters x units matrix (NaN = missing) -> (units, raters, values) of the present cells."""
    raters, units = np.nonzero(~np.isnan(matrix))
    return units.astype(np.int64), raters.astype(np.int64), matrix[raters, units]


def random_matrix(rng, raters, units, values, missing):
    matrix = rng.integers(1, values + 1, size=(raters, units)).astype(float)
    matrix[rng.random((raters, units)) < missing] = NAN
    return matrix


def test_krippendorff_2011_worked_example():
    units, _, values = long_form(KRIPPENDORFF_2011)

    nominal = stats.krippendorff_alpha(units, values, stats.NOMINAL)
    ordinal = stats.krippendorff_alpha(units, values, stats.ORDINAL)
    interval = stats.krippendorff_alpha(units, values, stats.INTERVAL)

    assert nominal == pytest.approx(113 / 152, abs=1e-12)  # published .743
    assert round(ordinal, 3) == 0.815
    assert interval == pytest.approx(951 / 1120, abs=1e-12)  # published .849


@pytest.mark.parametrize("level", stats.LEVELS)
@pytest.mark.parametrize("seed", range(8))
def test_krippendorff_alpha_matches_the_reference_package(level, seed):
    rng = np.random.default_rng(seed)
    matrix = random_matrix(rng, raters=int(rng.integers(2, 9)), units=60, values=5, missing=0.4)
    units, _, values = long_form(matrix)

    ours = stats.krippendorff_alpha(units, values, level)

    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert ours == pytest.approx(reference, abs=1e-9)


def test_krippendorff_alpha_drops_units_with_a_single_value():
    # Unit 2 has one value only: not pairable, so it changes nothing.
    units = np.array([0, 0, 1, 1, 2])
    with_single = stats.krippendorff_alpha(units, np.array([1.0, 1, 1, 2, 2]), stats.NOMINAL)
    without = stats.krippendorff_alpha(units[:4], np.array([1.0, 1, 1, 2]), stats.NOMINAL)

    # Coincidences o = [[2, 1], [1, 0]], n = 4: alpha = 1 - (n - 1) * 2 / (2 * n_1 * n_2) = 0.
    assert with_single == without == pytest.approx(1 - 3 * 2 / (2 * 3 * 1))


def test_krippendorff_alpha_is_undefined_without_variation_or_pairs():
    assert stats.krippendorff_alpha(np.array([0, 0, 1, 1]), np.ones(4), stats.NOMINAL) is None
    assert stats.krippendorff_alpha(np.array([0, 1]), np.array([1.0, 2]), stats.NOMINAL) is None
    assert stats.krippendorff_alpha(np.array([0]), np.array([NAN]), stats.INTERVAL) is None


def test_fleiss_1971_example():
    counts = np.stack([np.bincount(row - 1, minlength=5) for row in FLEISS_1971])

    kappa = stats.fleiss_kappa(counts)

    assert round(kappa, 3) == 0.430
    assert kappa == pytest.approx(fleiss_kappa(counts, method="fleiss"), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(5, [0.5, 0.2, 0.2, 0.1], size=200)

    assert stats.fleiss_kappa(counts) == pytest.approx(fleiss_kappa(counts), abs=1e-9)


def test_fleiss_kappa_needs_the_same_number_of_votes_per_item():
    assert stats.fleiss_kappa(np.array([[2, 1], [1, 1]])) is None


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 30, size=(4, 4)).astype(float)

    assert stats.cohen_kappa(table) == pytest.approx(cohens_kappa(table).kappa, abs=1e-9)


def test_cohen_matrix_matches_statsmodels_for_every_pair():
    rng = np.random.default_rng(3)
    matrix = random_matrix(rng, raters=5, units=300, values=4, missing=0.5)
    units, raters, values = long_form(matrix)
    pairs = stats.rater_pairs(units, raters, (values - 1).astype(np.int64))

    kappas, shared = stats.cohen_matrix(pairs, n_raters=5, n_codes=4, min_shared=10)

    for first in range(5):
        for second in range(5):
            both = ~np.isnan(matrix[first]) & ~np.isnan(matrix[second])
            if first == second:
                assert shared[first, second] == 0
                assert np.isnan(kappas[first, second])
                continue
            table = np.zeros((4, 4))
            np.add.at(
                table,
                (matrix[first, both].astype(int) - 1, matrix[second, both].astype(int) - 1),
                1,
            )
            assert shared[first, second] == both.sum()
            reference = cohens_kappa(table).kappa
            assert kappas[first, second] == pytest.approx(reference, abs=1e-9)


def test_cohen_matrix_leaves_out_pairs_with_few_shared_items():
    units, raters, codes = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 0])

    kappas, shared = stats.cohen_matrix(stats.rater_pairs(units, raters, codes), 2, 2, 3)

    assert shared.tolist() == [[0, 2], [2, 0]]
    assert np.isnan(kappas).all()


def test_percent_agreement_averages_agreeing_pairs_per_item():
    # Item 0: 3 of 3 pairs agree; item 1: 1 of 3; item 2 has one vote and does not count.
    counts = np.array([[3, 0], [2, 1], [1, 0]])

    assert stats.percent_agreement(counts) == pytest.approx((1 + 1 / 3) / 2)


@pytest.mark.parametrize(
    ("successes", "trials", "probability"),
    [(8, 10, 0.5), (3, 17, 0.5), (50, 100, 0.5), (0, 5, 0.5), (12_000, 23_000, 0.5),
     (7, 20, 0.3), (20, 20, 0.9), (0, 4, 0.0)],
)  # fmt: skip
def test_binomial_test_matches_scipy(successes, trials, probability):
    ours = stats.binomial_test(successes, trials, probability)

    assert ours == pytest.approx(binomtest(successes, trials, probability).pvalue, abs=1e-12)


def test_binomial_test_by_hand():
    # P(X <= 2) + P(X >= 8) for n = 10, p = 1/2: 2 * (1 + 10 + 45) / 1024.
    assert stats.binomial_test(8, 10) == pytest.approx(112 / 1024, abs=1e-15)
    assert stats.binomial_test(5, 10) == 1.0
    assert stats.binomial_test(0, 0) == 1.0


def test_leave_one_out_majority():
    # Item 0 votes: 0, 0, 1. Item 1 votes: 0, 1.
    counts = np.array([[2, 1], [1, 1]])
    units, codes = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 0, 1])

    has_majority, agrees = stats.leave_one_out_majority(counts, units, codes)

    # Each of item 0's first two voters sees {0, 1}: a tie, no majority; the third sees {0, 0}.
    assert has_majority.tolist() == [False, False, True, True, True]
    assert agrees.tolist() == [False, False, False, False, False]
