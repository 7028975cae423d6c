"""The agreement report of one project: vote arrays in, a JSON-ready dict out. No ORM.

`services.load_votes` reads the arrays; this module decides what is measured:

- pairwise choice, nominal over a/b/tie/both_bad (stored responses, not screen sides), and
  interval over the signed strength scale: a by strength s is +s, b is -s, a tie is 0; both_bad
  has no place on that scale and counts as missing there;
- SFT ratings, ordinal and interval; each flag as a present/absent nominal judgement;
- each section overall and per guideline version (the votes made under that version only).

Items and annotators are mapped to dense indexes once (`index`), and every section and table
counts over those indexes with `np.bincount`: no step sorts the million votes again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from curation.agreement import stats
from curation.agreement.stats import NOMINAL, FloatArray, IntArray

CHOICES = ("a", "b", "tie", "both_bad")
A, B, TIE, BOTH_BAD = range(4)
MISSING = -1  # a NULL column, or a choice or criterion left blank
CRITERION_CHOICES = ("a", "b", "tie")
MIN_SHARED_ITEMS = 10  # fewer shared items make a pair's kappa noise, not a measurement
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Votes:
    """One row per annotation, column by column; MISSING (-1) where a value is absent.

    `units` and `raters` are dense indexes (0..n-1) of `items` and `annotators`, filled in by
    `index`; a subset keeps them, so that its tables line up with the whole project's.
    """

    items: IntArray
    annotators: IntArray
    guidelines: IntArray  # the guideline version number; MISSING when none was recorded
    created: IntArray  # Unix seconds
    time_ms: IntArray
    choices: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    strengths: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    swapped: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    criteria: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    ratings: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flags: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    units: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    raters: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, rows: np.ndarray) -> Votes:
        """The votes selected by a boolean mask or index array, every column alike."""
        columns = {
            name: value[rows] if len(value) else value for name, value in self.__dict__.items()
        }
        return replace(self, **columns)


@dataclass(frozen=True)
class Units:
    """The project's items as units: how many, and the most votes any one has."""

    count: int
    most: int


@dataclass(frozen=True)
class Index:
    """The dense indexes of a project's votes: item ids and annotator ids in order."""

    votes: Votes
    units: Units
    people: IntArray  # annotator id of each rater index


def index(votes: Votes) -> Index:
    """Map items and annotators to dense indexes, once for the whole report."""
    item_ids, units = stats.dense_index(votes.items)
    people, raters = stats.dense_index(votes.annotators)
    most = int(np.bincount(units).max()) if len(units) else 0
    indexed = replace(votes, units=units, raters=raters)
    return Index(indexed, Units(len(item_ids), most), people)


@dataclass(frozen=True)
class Schema:
    """What the project measures: its kind, criteria, flags and overlap."""

    pairwise: bool
    criteria: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    overlap: int = 1
    rating_scale: int = 5


def build(votes: Votes, schema: Schema, names: dict[int, str]) -> dict[str, Any]:
    """The whole report; `names` maps annotator ids to display names."""
    indexed = index(votes)
    votes, units = indexed.votes, indexed.units
    versions, version_index = stats.dense_index(votes.guidelines)
    return {
        "kind": "pairwise" if schema.pairwise else "sft",
        "annotations": len(votes),
        "items": units.count,
        "annotators": len(indexed.people),
        "overall": section(votes, schema, units),
        "by_guideline": [
            {"version": None if v == MISSING else int(v)}
            | section(votes.subset(version_index == k), schema, units)
            for k, v in enumerate(versions)
        ],
        "pairs": pair_matrix(indexed, schema, names),
        "per_annotator": per_annotator(indexed, schema, names),
        "distribution": distribution(votes, schema),
        "progress": progress(votes),
    }


def labels(schema: Schema) -> tuple[str, ...]:
    """The nominal categories: choices, or ratings 1..scale."""
    if schema.pairwise:
        return CHOICES
    return tuple(str(r) for r in range(1, schema.rating_scale + 1))


def codes_of(votes: Votes, schema: Schema) -> IntArray:
    """Each vote's category index (MISSING when the vote has none)."""
    if schema.pairwise:
        return votes.choices
    return np.where(votes.ratings == MISSING, MISSING, votes.ratings - 1)


def section(votes: Votes, schema: Schema, units: Units) -> dict[str, Any]:
    """The coefficients of one set of votes, over the project's units."""
    table = unit_table(votes.units, codes_of(votes, schema), units, len(labels(schema)))
    per_row = stats.row_sums(table.rows)
    common = {
        "annotations": len(votes),
        "items": int(table.multiplicity[per_row > 0].sum()),
        "pairable_items": int(table.multiplicity[per_row >= 2].sum()),
        "percent_agreement": stats.percent_agreement(table.rows, table.multiplicity),
    }
    if schema.pairwise:
        return common | _pairwise_section(votes, schema, table, units)
    return common | _sft_section(votes, schema, units)


@dataclass(frozen=True)
class Table:
    """The units x categories vote counts, compressed (`stats.unit_patterns`): its distinct
    rows, how many units have each, and each unit's row."""

    rows: IntArray
    multiplicity: IntArray
    row_of_unit: IntArray


def unit_table(unit_index: IntArray, codes: IntArray, units: Units, n_codes: int) -> Table:
    """The table of the votes that have a category (code 0..n_codes-1; MISSING counts none)."""
    return Table(*stats.unit_patterns(unit_index, codes, units.count, n_codes, units.most))


def _alpha(
    unit_index: IntArray, codes: IntArray, domain: np.ndarray, units: Units, level: str
) -> float | None:
    """Krippendorff's alpha of values coded 0..len(domain)-1 (MISSING = no value)."""
    table = unit_table(unit_index, codes, units, len(domain))
    return stats.alpha_from_counts(table.rows, domain.astype(np.float64), level, table.multiplicity)


def _pairwise_section(votes: Votes, schema: Schema, table: Table, units: Units) -> dict[str, Any]:
    rows, multiplicity = table.rows, table.multiplicity
    # Fleiss needs the same number of votes on every item: the fully labeled ones.
    complete = (stats.row_sums(rows) == schema.overlap) & (schema.overlap >= 2)
    decided = np.bincount(votes.choices + 1, minlength=len(CHOICES) + 1)[1:]
    signed, on_scale = signed_strength_codes(votes)
    # Values -s..s, coded 0..2s; a domain value nobody used changes no sum (alpha_from_counts).
    top = int(np.abs(signed[on_scale]).max()) if on_scale.any() else 0
    signed_codes = np.where(on_scale, signed + top, MISSING)
    criterion_scale = np.arange(len(CRITERION_CHOICES))
    return {
        "alpha_nominal": stats.alpha_from_counts(
            rows, np.arange(len(CHOICES)), stats.NOMINAL, multiplicity
        ),
        "alpha_interval": _alpha(
            votes.units, signed_codes, np.arange(-top, top + 1), units, stats.INTERVAL
        ),
        "fleiss_kappa": stats.fleiss_kappa(rows[complete], multiplicity[complete]),
        "fleiss_items": int(multiplicity[complete].sum()),
        "tie_rate": _share(decided, TIE),
        "both_bad_rate": _share(decided, BOTH_BAD),
        "criteria": {
            name: _alpha(votes.units, votes.criteria[:, column], criterion_scale, units, NOMINAL)
            for column, name in enumerate(schema.criteria)
        },
    }


def _share(counts: IntArray, code: int) -> float | None:
    """The share of votes with `code` among the counted ones (as a mean of 0/1 would give)."""
    total = int(counts.sum())
    return int(counts[code]) / total if total else None


def signed_strength_codes(votes: Votes) -> tuple[IntArray, np.ndarray]:
    """(+strength for A, -strength for B, 0 for a tie; whether the vote is on that scale).

    A separate mask, because -1 (B by strength 1) is a value here, not MISSING; both_bad and
    a choice without a strength are off the scale.
    """
    chose_a, chose_b = votes.choices == A, votes.choices == B
    on_scale = ((chose_a | chose_b) & (votes.strengths != MISSING)) | (votes.choices == TIE)
    signed = np.where(chose_b, -votes.strengths, votes.strengths)
    return np.where(votes.choices == TIE, 0, signed), on_scale


def signed_strength(votes: Votes) -> FloatArray:
    """The signed strength as floats, NaN off the scale (the krippendorff package's form)."""
    signed, on_scale = signed_strength_codes(votes)
    return np.where(on_scale, signed, np.nan).astype(np.float64)


def _sft_section(votes: Votes, schema: Schema, units: Units) -> dict[str, Any]:
    # Ratings are 1 and up (a database constraint); codes 0..top-1 stand for 1..top.
    top = max(schema.rating_scale, int(votes.ratings.max()) if len(votes) else 0)
    codes = np.where(votes.ratings == MISSING, MISSING, votes.ratings - 1)
    scale = np.arange(1, top + 1)
    return {
        "alpha_ordinal": _alpha(votes.units, codes, scale, units, stats.ORDINAL),
        "alpha_interval": _alpha(votes.units, codes, scale, units, stats.INTERVAL),
        "flags": {
            name: _flag_agreement(votes, column, units) for column, name in enumerate(schema.flags)
        },
    }


def _flag_agreement(votes: Votes, column: int, units: Units) -> dict[str, Any]:
    """A flag as a yes/no judgement every annotator makes on every item they label."""
    flag = votes.flags[:, column]
    table = unit_table(votes.units, flag, units, 2)
    return {
        "alpha": stats.alpha_from_counts(
            table.rows, np.arange(2), stats.NOMINAL, table.multiplicity
        ),
        "percent_agreement": stats.percent_agreement(table.rows, table.multiplicity),
        "rate": _share(np.bincount(flag, minlength=2), 1),
    }


def pair_matrix(indexed: Index, schema: Schema, names: dict[int, str]) -> dict[str, Any]:
    """Cohen's kappa for every pair of annotators with at least MIN_SHARED_ITEMS together."""
    votes = indexed.votes
    codes = codes_of(votes, schema)
    present = codes != MISSING
    # The matrix lists only annotators with at least one vote that has a category.
    voted = np.bincount(votes.raters[present], minlength=len(indexed.people)) > 0
    rank = np.cumsum(voted) - 1
    people = indexed.people[voted]
    raters = rank[votes.raters[present]]
    pairs = stats.rater_pairs(votes.units[present], raters, codes[present])
    kappas, shared = stats.cohen_matrix(pairs, len(people), len(labels(schema)), MIN_SHARED_ITEMS)
    return {
        "annotators": [{"id": int(p), "name": names.get(int(p), str(p))} for p in people],
        "min_shared_items": MIN_SHARED_ITEMS,
        "kappa": [[None if np.isnan(k) else float(k) for k in row] for row in kappas],
        "shared_items": shared.tolist(),
    }


def per_annotator(indexed: Index, schema: Schema, names: dict[int, str]) -> list[dict[str, Any]]:
    """Each annotator's votes against the leave-one-out majority, timing and position bias."""
    votes, n_raters = indexed.votes, len(indexed.people)
    codes = codes_of(votes, schema)
    present = codes != MISSING
    majority, agrees = _majority_per_vote(
        votes.units[present], codes[present], indexed.units, schema
    )
    raters = votes.raters[present]
    scored = np.bincount(raters[majority], minlength=n_raters).tolist()
    agreeing = np.bincount(raters[agrees], minlength=n_raters).tolist()
    items = np.bincount(votes.raters, minlength=n_raters).tolist()
    medians = median_per_group(votes.raters, votes.time_ms, n_raters).tolist()
    bias = position_bias(votes, n_raters) if schema.pairwise else None
    rows = []
    for rater, person in enumerate(indexed.people.tolist()):
        row = {
            "id": person,
            "name": names.get(person, str(person)),
            "items": items[rater],
            "majority_items": scored[rater],
            "agreement_with_majority": agreeing[rater] / scored[rater] if scored[rater] else None,
            "median_time_ms": medians[rater],
            # services.gold_accuracy fills these in from the gold answers (not votes here).
            "gold_accuracy": None,
            "gold_items": 0,
        }
        rows.append(row | (bias[rater] if bias else {}))
    return rows


def _majority_per_vote(
    unit_index: IntArray, codes: IntArray, units: Units, schema: Schema
) -> tuple[np.ndarray, np.ndarray]:
    """`stats.leave_one_out_majority` for each vote, looked up in a table of every (distinct
    unit row, category) pair: the answer depends on nothing else."""
    n_codes = len(labels(schema))
    table = unit_table(unit_index, codes, units, n_codes)
    grid_rows = np.repeat(np.arange(len(table.rows)), n_codes)
    grid_codes = np.tile(np.arange(n_codes), len(table.rows))
    majority, agrees = stats.leave_one_out_majority(table.rows, grid_rows, grid_codes)
    cell = table.row_of_unit[unit_index] * n_codes + codes
    return majority[cell], agrees[cell]


def median_per_group(groups: IntArray, values: IntArray, n_groups: int) -> FloatArray:
    """The median of each group's values (every group has one at least), by one sort.

    Group and value share one int64 key (group in the high bits), so a single `np.sort` puts
    each group's values in order, side by side; the medians are then read at fixed positions.
    Values outside 0..2^32 (not a duration in ms) take the slow path, one group at a time.
    """
    if len(values) and (values.min() < 0 or values.max() >= 2**32):
        return np.array([np.median(values[groups == g]) for g in range(n_groups)])
    ordered = np.sort((groups.astype(np.int64) << 32) | values.astype(np.int64)) & (2**32 - 1)
    sizes = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(sizes) - sizes
    low, high = ordered[starts + (sizes - 1) // 2], ordered[starts + sizes // 2]
    # As np.median: the mean of the two middle values in float64.
    return (low.astype(np.float64) + high.astype(np.float64)) / 2


def position_bias(votes: Votes, n_raters: int) -> list[dict[str, Any]]:
    """Per rater: how often they picked the left or the right screen side, with a binomial test.

    The stored choice names a response; the lease's `swapped` says which side showed B, so the
    screen side is "left" exactly when (choice is A) differs from swapped.
    """
    decisive = (votes.choices == A) | (votes.choices == B)
    is_left = (votes.choices[decisive] == A) != (votes.swapped[decisive] == 1)
    raters = votes.raters[decisive]
    lefts = np.bincount(raters[is_left], minlength=n_raters).tolist()
    totals = np.bincount(raters, minlength=n_raters).tolist()
    return [
        {
            "left": left,
            "right": total - left,
            "left_rate": left / total if total else None,
            "position_p_value": stats.binomial_test(left, total),
        }
        for left, total in zip(lefts, totals, strict=True)
    ]


def distribution(votes: Votes, schema: Schema) -> dict[str, int]:
    """Votes per label, overall; votes without a label under "none"."""
    codes = codes_of(votes, schema)
    names = labels(schema)
    counts = np.bincount(codes[codes != MISSING], minlength=len(names))
    return dict(zip(names, map(int, counts), strict=True)) | {"none": int((codes == MISSING).sum())}


def progress(votes: Votes) -> list[dict[str, Any]]:
    """Annotations per UTC day and the running total."""
    days, day_index = stats.dense_index(votes.created // SECONDS_PER_DAY)
    counts = np.bincount(day_index, minlength=len(days))
    totals = np.cumsum(counts)
    return [
        {
            "date": datetime.fromtimestamp(day * SECONDS_PER_DAY, tz=UTC).date().isoformat(),
            "annotations": count,
            "total": total,
        }
        for day, count, total in zip(days.tolist(), counts.tolist(), totals.tolist(), strict=True)
    ]
