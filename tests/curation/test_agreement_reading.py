"""The fast paths behind a report: dense indexes, compressed unit tables, the packed reader.

Each is checked against the plain computation it replaces (np.unique, the full units x values
table, the cursor's rows), so the report's numbers cannot drift from the reference packages.
"""

import struct

import numpy as np
import pytest
from django.db import connection

from curation.agreement import reading, report, services, stats
from labeling.models import Assignment
from tests.curation.agreement_builders import vote
from tests.factories import PairwiseProjectFactory, UserFactory, pairwise_item


@pytest.mark.parametrize("spread", [1, 10**9])  # the presence table, and the sort fallback
def test_dense_index_is_np_unique(spread):
    rng = np.random.default_rng(1)
    values = rng.integers(-50, 50, 1000) * spread

    distinct, index = stats.dense_index(values)

    expected, inverse = np.unique(values, return_inverse=True)
    assert distinct.tolist() == expected.tolist()
    assert index.tolist() == inverse.reshape(-1).tolist()


@pytest.mark.parametrize("most", [3, 40])  # 40: too many digits for float64, the full table
def test_unit_patterns_expand_to_the_full_table(most):
    rng = np.random.default_rng(2)
    units = rng.integers(0, 200, 600)
    codes = rng.integers(-1, 11, 600)  # -1: no value
    most = max(most, int(np.bincount(units).max()))

    rows, multiplicity, row_of_unit = stats.unit_patterns(units, codes, 200, 11, most)

    present = codes >= 0
    table = stats.unit_value_counts(units[present], codes[present], 200, 11)
    assert (rows[row_of_unit] == table).all()
    assert multiplicity.tolist() == np.bincount(row_of_unit, minlength=len(rows)).tolist()
    assert len(np.unique(rows, axis=0)) == len(rows)


@pytest.mark.parametrize("level", stats.LEVELS)
def test_compressed_table_gives_the_same_coefficients(level):
    rng = np.random.default_rng(3)
    units, codes = np.repeat(np.arange(300), 3), rng.integers(-1, 4, 900)
    present = codes >= 0
    full = stats.unit_value_counts(units[present], codes[present], 300, 4)
    rows, multiplicity, _ = stats.unit_patterns(units, codes, 300, 4, 3)
    domain = np.array([1.0, 2, 4, 8])

    assert stats.alpha_from_counts(rows, domain, level, multiplicity) == pytest.approx(
        stats.alpha_from_counts(full, domain, level), abs=1e-12
    )
    assert stats.percent_agreement(rows, multiplicity) == pytest.approx(
        stats.percent_agreement(full), abs=1e-12
    )
    complete, rows_complete = full.sum(axis=1) == 3, rows.sum(axis=1) == 3
    assert stats.fleiss_kappa(rows[rows_complete], multiplicity[rows_complete]) == pytest.approx(
        stats.fleiss_kappa(full[complete]), abs=1e-12
    )


def test_median_per_group_is_np_median():
    rng = np.random.default_rng(4)
    groups, values = rng.integers(0, 7, 500), rng.integers(0, 10**6, 500)

    medians = report.median_per_group(groups, values, 7)

    assert medians.tolist() == [np.median(values[groups == g]) for g in range(7)]


@pytest.mark.parametrize("span", [1, 10**12])  # a table over the id span, and a binary search
def test_lookup_by_id(span):
    ids, values = np.array([5, 9, 2]) * span, np.array([1, 2, 3])

    found = reading.lookup(np.array([9, 4, 2, 5, 2]) * span, ids, values)

    assert found.tolist() == [2, 0, 3, 1, 3]


def test_unpack_columns_of_big_endian_int64s():
    rows = [(n, -n, 2**40 + n) for n in range(50)]
    packed = [struct.pack(f">{len(rows)}q", *column) for column in zip(*rows, strict=True)]

    assert reading.unpack_columns(packed, 3).tolist() == [list(row) for row in rows]
    assert reading.unpack_columns((None, None, None), 3).shape == (0, 3)
    with pytest.raises(ValueError, match="lengths"):
        reading.unpack_columns([packed[0], packed[1][:-8], packed[2]], 3)


@pytest.fixture
def mixed_project(db):
    """Two annotators on 12 items, with swapped leases, blank criteria and one gold answer."""
    project = PairwiseProjectFactory(slug="mixed", overlap=2, criteria=["helpfulness"])
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    choices = ["a", "b", "tie", "both_bad"]
    for n in range(12):
        item = pairwise_item(project)
        vote(project, item, alice, choice=choices[n % 4], swapped=n % 3 == 0,
             criteria={"helpfulness": "a"} if n % 2 else {}, day=n)  # fmt: skip
        last = vote(project, item, bob, choice=choices[n * 7 % 4], time_spent_ms=n * 100)
    Assignment.objects.filter(pk=last.assignment_id).update(gold=True)
    return project


def test_load_votes_leaves_out_gold_and_keeps_the_lease(mixed_project):
    votes, _ = services.load_votes(mixed_project)

    assert len(votes) == 23  # bob's last vote was a gold answer
    assert votes.swapped.tolist().count(1) == 4
    # alice named a criterion on the odd items; blank criteria are MISSING.
    assert sorted(votes.criteria[:, 0].tolist()) == [-1] * 17 + [0] * 6
    # Unpacked from their shared columns: annotator and time, choice and strength.
    bob = votes.annotators == votes.annotators.max()
    assert sorted(votes.time_ms[bob].tolist()) == [n * 100 for n in range(11)]
    assert sorted(votes.choices.tolist()) == sorted(
        [n % 4 for n in range(12)] + [n * 7 % 4 for n in range(11)]
    )
    assert set(votes.strengths[votes.choices >= 2].tolist()) == {-1}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the packed read is PostgreSQL's")
def test_packed_read_gives_what_the_cursor_reads(mixed_project):
    columns, aliases = services._pairwise_columns(mixed_project)
    rows = reading.annotation_rows(mixed_project, columns, aliases)
    width = len(reading.BASE_COLUMNS) + 1  # the codes share one packed column

    packed = reading.fetch(rows, width)

    plain = np.array(list(rows), dtype=np.int64)
    assert sorted(packed.tolist()) == sorted(plain.tolist())
    assert len(packed) == 24


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the packed read is PostgreSQL's")
def test_packed_read_of_no_rows(db):
    project = PairwiseProjectFactory(slug="empty")

    votes, last_id = services.load_votes(project)

    assert (len(votes), last_id) == (0, 0)
