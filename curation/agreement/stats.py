"""Agreement coefficients on long-form vote arrays: pure numpy, no ORM, no reference packages.

A vote is one (unit, rater, value) triple: `units` and `raters` are integer indexes (0..n-1)
and `values` a float array where NaN means "no value" (a missing judgement). Long form keeps a
million votes in a few arrays, where the raters x units matrix of the textbooks would be mostly
empty. Every coefficient follows its published definition:

- Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"): the
  coincidence matrix over pairable values (units with at least two values; the rest are
  dropped, as the definition says), and the nominal, ordinal and interval difference functions.
- Fleiss' kappa (Fleiss 1971): items x categories counts, the same number of ratings per item.
- Cohen's kappa (Cohen 1960), unweighted, from one pair of raters' confusion table.
- The exact two-sided binomial test: the probability of every outcome no more likely than the
  one observed (the "minlike" rule, as R's binom.test and SciPy's binomtest use).

Undefined values (no pairable data, or a single value so that nothing could disagree) are None
in scalar results and NaN in matrices.

Speed: a report over a million votes calls these a few dozen times, so nothing here sorts the
votes when it can count them instead. `dense_index` maps ids to 0..n-1 with a presence table
(O(n + range), no sort), tables are built with `np.bincount`, and alpha comes from the units x
values table (`alpha_from_counts`): O(n) for a fixed number of votes per unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

NOMINAL = "nominal"
ORDINAL = "ordinal"
INTERVAL = "interval"
LEVELS = (NOMINAL, ORDINAL, INTERVAL)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
# SciPy's tolerance for "as likely as the observed outcome": floating-point noise in the pmf
# must not drop an outcome that is exactly as likely.
RELATIVE_TOLERANCE = 1 + 1e-7


def dense_index(values: IntArray) -> tuple[IntArray, IntArray]:
    """(the distinct values in order, each value's position among them): what
    `np.unique(values, return_inverse=True)` gives, without a sort where the values span a range
    no wider than a few times their number (ids, days, codes): a presence table, then cumsum."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return values, np.zeros(0, dtype=np.int64)
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span > 4 * len(values) + 4096:
        distinct, index = np.unique(values, return_inverse=True)
        return distinct, index.reshape(-1).astype(np.int64)
    offsets = values - low
    seen = np.zeros(span, dtype=bool)
    seen[offsets] = True
    rank = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen).astype(np.int64) + low, rank[offsets]


def unit_value_counts(units: IntArray, codes: IntArray, n_units: int, n_values: int) -> IntArray:
    """Units x values table: how many votes of each unit carry each value code."""
    flat = np.bincount(units * n_values + codes, minlength=n_units * n_values)
    return flat.reshape(n_units, n_values)


def unit_patterns(
    units: IntArray, codes: IntArray, n_units: int, n_values: int, most: int
) -> tuple[IntArray, IntArray, IntArray]:
    """The units x values table, compressed: (its distinct rows, how many units have each row,
    each unit's row index). `codes` are 0..n_values-1, or -1 for "no value"; `most` bounds the
    votes on any unit.

    Every coefficient here is a sum over units of a function of the unit's row alone, so it
    can be computed once per distinct row and weighted by its multiplicity: with a few votes per
    unit there are at most a few hundred rows, however many units. A unit's row is written as
    one number in base most + 1 (a digit per value), summed by a weighted bincount.
    """
    base = most + 1
    if base**n_values >= 2**53:  # a row number would not be exact in float64
        table = unit_value_counts(units[codes >= 0], codes[codes >= 0], n_units, n_values)
        rows, row_of_unit, multiplicity = np.unique(
            table, axis=0, return_inverse=True, return_counts=True
        )
        return rows, multiplicity, row_of_unit.reshape(-1)
    digits = np.concatenate(([0.0], float(base) ** np.arange(n_values)))
    numbers = np.bincount(units, weights=digits[codes + 1], minlength=n_units).astype(np.int64)
    distinct, row_of_unit = dense_index(numbers)
    rows = distinct[:, None] // base ** np.arange(n_values, dtype=np.int64) % base
    return rows, np.bincount(row_of_unit, minlength=len(distinct)), row_of_unit


def row_sums(counts: IntArray) -> IntArray:
    """counts.sum(axis=1), as a matrix-vector product: several times faster on the tall, narrow
    units x values tables than numpy's reduction along the short axis."""
    return counts @ np.ones(counts.shape[1], dtype=counts.dtype)


def _multiplicity(counts: np.ndarray, multiplicity: IntArray | None) -> FloatArray:
    """How many units each row of a table stands for: 1 each, unless compressed."""
    if multiplicity is None:
        return np.ones(len(counts))
    return np.asarray(multiplicity, dtype=np.float64)


def coincidences(counts: IntArray, multiplicity: IntArray | None = None) -> FloatArray:
    """Krippendorff's coincidence matrix o_ck = sum_u (n_uc n_uk - [c=k] n_uc) / (m_u - 1);
    each row of `counts` stands for `multiplicity` units (see `unit_patterns`)."""
    per_unit = row_sums(counts)
    # Units with fewer than two values are not pairable: weight 0 (a unit with one value adds
    # nothing anyway, and one with none would divide by zero), rather than a copy without them.
    with np.errstate(divide="ignore"):
        weights = np.where(per_unit >= 2, _multiplicity(counts, multiplicity) / (per_unit - 1), 0)
    values = counts.astype(np.float64)
    weighted = values * weights[:, None]
    return weighted.T @ values - np.diag(weighted.sum(axis=0))


def differences(level: str, domain: FloatArray, marginals: FloatArray) -> FloatArray:
    """The squared difference function delta^2(c, k) over the value domain."""
    if level == NOMINAL:
        return 1.0 - np.eye(len(domain))
    if level == INTERVAL:
        return np.subtract.outer(domain, domain) ** 2
    if level == ORDINAL:
        # (sum of n_g for g from c to k) - (n_c + n_k) / 2, squared; cumulative sums make it
        # one subtraction per cell.
        cumulative = np.cumsum(marginals)
        ranks = np.arange(len(domain))
        low, high = np.minimum.outer(ranks, ranks), np.maximum.outer(ranks, ranks)
        spanned = cumulative[high] - cumulative[low] + marginals[low]
        return (spanned - (marginals[low] + marginals[high]) / 2) ** 2
    raise ValueError(f"unknown level of measurement: {level}")


def krippendorff_alpha(units: IntArray, values: FloatArray, level: str) -> float | None:
    """Krippendorff's alpha = 1 - D_o / D_e over the pairable values; None when undefined."""
    present = ~np.isnan(values)
    if present.sum() < 2:
        return None
    domain, codes = np.unique(values[present], return_inverse=True)
    _, unit_codes = dense_index(units[present])
    n_units = int(unit_codes.max()) + 1
    counts = unit_value_counts(unit_codes, codes.reshape(-1).astype(np.int64), n_units, len(domain))
    return alpha_from_counts(counts, domain, level)


def alpha_from_counts(
    counts: IntArray, domain: np.ndarray, level: str, multiplicity: IntArray | None = None
) -> float | None:
    """Krippendorff's alpha from a units x values table, value code c standing for domain[c]
    (rows standing for `multiplicity` units each, if given).

    Units with fewer than two values drop out in `coincidences`, as the definition says; a
    value no pairable unit has gets a zero marginal and changes no sum.
    """
    observed = coincidences(counts, multiplicity)
    marginals = observed.sum(axis=1)
    total = marginals.sum()
    if total < 2:
        return None
    delta = differences(level, np.asarray(domain, dtype=np.float64), marginals)
    expected_disagreement = float((np.outer(marginals, marginals) * delta).sum())
    if expected_disagreement == 0:
        return None
    return 1.0 - float(total - 1) * float((observed * delta).sum()) / expected_disagreement


def fleiss_kappa(counts: IntArray, multiplicity: IntArray | None = None) -> float | None:
    """Fleiss' kappa of an items x categories table whose rows all have the same sum (each
    row standing for `multiplicity` items, if given)."""
    weights = _multiplicity(counts, multiplicity)
    counts = np.asarray(counts, dtype=np.float64)
    raters = row_sums(counts)
    if len(counts) == 0 or raters[0] < 2 or not np.all(raters == raters[0]):
        return None
    per_rater = raters[0]
    shares = (weights @ counts) / (weights @ raters)
    per_item = (row_sums(counts * counts) - per_rater) / (per_rater * (per_rater - 1))
    chance = float((shares * shares).sum())
    if chance == 1:
        return None
    return (float(weights @ per_item / weights.sum()) - chance) / (1 - chance)


def cohen_kappa(table: FloatArray) -> float | None:
    """Unweighted Cohen's kappa of one confusion table (rater 1 in rows, rater 2 in columns)."""
    kappas = cohen_kappas(np.asarray(table, dtype=np.float64)[None])
    return None if np.isnan(kappas[0]) else float(kappas[0])


def cohen_kappas(tables: FloatArray) -> FloatArray:
    """Cohen's kappa of a stack of confusion tables (pairs x K x K) at once; NaN if undefined."""
    totals = tables.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.trace(tables, axis1=1, axis2=2) / totals
        chance = (tables.sum(axis=2) * tables.sum(axis=1)).sum(axis=1) / totals**2
        kappas = (observed - chance) / (1 - chance)
    kappas[(chance >= 1) | (totals == 0)] = np.nan
    return kappas


@dataclass(frozen=True)
class PairTables:
    """Every ordered pair of raters who judged a unit together: (low rater, high rater)."""

    first: IntArray
    second: IntArray
    first_codes: IntArray
    second_codes: IntArray


def rater_pairs(units: IntArray, raters: IntArray, codes: IntArray) -> PairTables:
    """All pairs of votes on the same unit, with the lower rater index first.

    Votes grouped by unit sit side by side, so the pairs are vote j with vote j + d for each
    distance d smaller than the largest number of votes on a unit. Only the grouping matters
    (each pair is put in rater order afterwards): votes that arrive grouped are not sorted.
    """
    if len(units) > 1 and np.any(units[1:] < units[:-1]):
        order = np.argsort(units, kind="stable")
        units, raters, codes = units[order], raters[order], codes[order]
    parts: list[tuple[IntArray, IntArray, IntArray, IntArray]] = []
    for distance in range(1, len(units)):
        left = np.flatnonzero(units[distance:] == units[:-distance])
        if not len(left):
            break
        right = left + distance
        swap = raters[left] > raters[right]
        parts.append(
            (
                np.where(swap, raters[right], raters[left]),
                np.where(swap, raters[left], raters[right]),
                np.where(swap, codes[right], codes[left]),
                np.where(swap, codes[left], codes[right]),
            )
        )
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return PairTables(empty, empty, empty, empty)
    first, second, first_codes, second_codes = (np.concatenate(p) for p in zip(*parts, strict=True))
    return PairTables(first, second, first_codes, second_codes)


def cohen_matrix(
    pairs: PairTables, n_raters: int, n_codes: int, min_shared: int
) -> tuple[FloatArray, IntArray]:
    """Raters x raters Cohen's kappa (NaN below `min_shared` shared units) and shared counts."""
    pair_index = pairs.first * n_raters + pairs.second
    cells = (pair_index * n_codes + pairs.first_codes) * n_codes + pairs.second_codes
    counted = np.bincount(cells, minlength=n_raters * n_raters * n_codes * n_codes)
    tables = counted.reshape(n_raters * n_raters, n_codes, n_codes).astype(np.float64)
    shared = tables.sum(axis=(1, 2)).astype(np.int64).reshape(n_raters, n_raters)
    kappas = cohen_kappas(tables).reshape(n_raters, n_raters)
    kappas[shared < max(min_shared, 1)] = np.nan
    # Kappa is symmetric in its two raters: mirror the upper triangle.
    shared = shared + shared.T
    kappas = np.where(np.isnan(kappas), kappas.T, kappas)
    return kappas, shared


def percent_agreement(counts: IntArray, multiplicity: IntArray | None = None) -> float | None:
    """Mean over units with two or more votes of the share of agreeing vote pairs (each row
    standing for `multiplicity` units, if given)."""
    weights = _multiplicity(counts, multiplicity)
    per_unit = row_sums(counts)
    pairable = (per_unit >= 2) & (weights > 0)
    if not pairable.any():
        return None
    counts, per_unit = counts[pairable].astype(np.float64), per_unit[pairable]
    agreeing = row_sums(counts * (counts - 1)) / (per_unit * (per_unit - 1))
    return float(weights[pairable] @ agreeing / weights[pairable].sum())


def binomial_test(successes: int, trials: int, probability: float = 0.5) -> float:
    """Exact two-sided p-value: the total probability of outcomes no likelier than observed."""
    if trials == 0:
        return 1.0
    outcomes = np.arange(trials + 1, dtype=np.float64)
    # log k! for every k at once: a cumulative sum of logs instead of n calls to lgamma.
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(outcomes[1:]))))
    log_pmf = (
        log_factorial[-1]
        - log_factorial
        - log_factorial[::-1]
        + _xlogy(outcomes, probability)
        + _xlogy(trials - outcomes, 1 - probability)
    )
    threshold = log_pmf[successes] + math.log(RELATIVE_TOLERANCE)
    return min(1.0, float(np.exp(log_pmf[log_pmf <= threshold]).sum()))


def _xlogy(counts: FloatArray, probability: float) -> FloatArray:
    """counts * log(probability) with 0 * log(0) = 0, as the binomial pmf needs at p = 0 or 1."""
    if probability == 0:
        return np.where(counts == 0, 0.0, -np.inf)
    return counts * math.log(probability)


def leave_one_out_majority(
    counts: IntArray, units: IntArray, codes: IntArray
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """For each vote: does a unique majority of the *other* votes on its unit exist, and is it
    the same as this vote? Returns (has_majority, agrees)."""
    # Values x votes, so that each step below is a fast pass along the votes, not a reduction
    # along a row of four.
    others = np.ascontiguousarray(counts.T)[:, units]
    votes = np.arange(len(units))
    others[codes, votes] -= 1
    top = others.max(axis=0)
    unique = (others == top).sum(axis=0) == 1
    has_majority = unique & (top > 0)
    # The majority is unique, so the vote agrees exactly when its own value reaches the top.
    agrees = has_majority & (others[codes, votes] == top)
    return has_majority, agrees
