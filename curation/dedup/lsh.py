"""Locality-sensitive hashing over MinHash signatures, and grouping of verified pairs. Pure.

Bands: the 128 MinHash values of a signature are cut into BANDS bands of ROWS rows; two texts
become a candidate pair when all rows of at least one band agree. The probability of that for
Jaccard similarity s is 1 - (1 - s**ROWS)**BANDS: for 16 x 8, 0.947 at exactly s = 0.8, 0.994
at 0.85 and 0.9999 at 0.9; datasketch's default split for threshold 0.8 (9 x 13) gives 0.40,
0.69 and 0.93. Over the pairs at or above 0.8 of the benchmark corpus, 16 x 8 finds 99.4-99.6%
and 9 x 13 87% (docs/curation.md). Lower thresholds use fewer rows a band (`rows_for`). Every
candidate pair is then verified by exact Jaccard, so the low rows per band cost verification
time, never precision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from curation.dedup.minhash import NUM_PERM, mix, sorted_unique

BANDS, ROWS = 16, 8  # at the default threshold, 0.8
assert BANDS * ROWS == NUM_PERM  # noqa: S101 - a configuration error, caught at import
_EMPTY = np.uint32(0xFFFFFFFF)


def rows_for(threshold: float) -> int:
    """Rows a band for a threshold: a pair at the threshold is a candidate with p >= 0.95.

    8 rows (16 bands) give 0.947 at 0.8 but 0.24 at 0.6; 5 rows (25 bands) give 0.954 at
    0.65, 3 rows (42 bands, 126 of the 128 values) 0.996 at 0.5. Fewer rows only cost
    verification time: more dissimilar pairs become candidates.
    """
    if threshold >= 0.8 - 1e-9:
        return ROWS
    return 5 if threshold >= 0.65 - 1e-9 else 3


def band_keys(signatures: np.ndarray, rows: int = ROWS) -> np.ndarray:
    """One 64-bit key per band, shape (n, NUM_PERM // rows); key 0 (ignored): no shingles."""
    bands = NUM_PERM // rows
    values = signatures[:, : bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for row in range(rows):
            keys = mix(keys * np.uint64(0x9E3779B97F4A7C15) + values[:, :, row] + np.uint64(row))
    keys[keys == 0] = 1  # 0 is reserved for "empty"
    keys[(signatures == _EMPTY).all(axis=1)] = 0
    return keys


def candidate_pairs(keys: np.ndarray, fresh: np.ndarray | None = None) -> np.ndarray:
    """Index pairs (i < j) that share a band key, each once, sorted; shape (m, 2).

    With `fresh` (a boolean mask), only pairs with at least one fresh member: the others were
    found by an earlier run (incremental deduplication).
    """
    found = [_pairs_in_band(keys[:, band]) for band in range(keys.shape[1])]
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    if fresh is not None and len(pairs):
        pairs = pairs[fresh[pairs[:, 0]] | fresh[pairs[:, 1]]]
    if not len(pairs):
        return np.zeros((0, 2), dtype=np.int64)
    codes = sorted_unique(pairs[:, 0] * np.int64(len(keys)) + pairs[:, 1])
    return np.stack((codes // len(keys), codes % len(keys)), axis=1)


def _pairs_in_band(column: np.ndarray) -> np.ndarray:
    """Every pair of rows with the same non-zero key, vectorized (no loop over buckets)."""
    order = np.argsort(column, kind="stable")  # stable: indices ascend inside a bucket
    keys = column[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    sizes = np.diff(np.append(starts, len(keys)))
    shared = (sizes > 1) & (keys[starts] != 0)
    if not shared.any():
        return np.zeros((0, 2), dtype=np.int64)
    bucket_end = np.repeat(starts + sizes, sizes)
    position = np.arange(len(keys))
    partners = np.where(np.repeat(shared, sizes), bucket_end - position - 1, 0)
    left = np.repeat(position, partners)
    first = np.cumsum(partners) - partners
    right = left + 1 + (np.arange(partners.sum()) - np.repeat(first, partners))
    return np.stack((order[left], order[right]), axis=1)


@dataclass(frozen=True)
class Group:
    representative: int
    members: list[tuple[int, float]]  # (member, similarity to the representative), by member


def star_groups(pairs: Iterable[tuple[int, int, float]], threshold: float) -> list[Group]:
    """Groups in which every member is at least `threshold` similar to the representative.

    Greedy by id: the lowest unassigned id takes its unassigned similar neighbours. Not the
    connected components: a chain a~b~c would put a and c together though they may differ.
    The result depends only on the set of pairs, never on the order they were found in, so
    batched, incremental and single runs give the same groups.
    """
    neighbours: dict[int, dict[int, float]] = defaultdict(dict)
    for left, right, similarity in pairs:
        if similarity >= threshold:
            neighbours[left][right] = similarity
            neighbours[right][left] = similarity
    assigned: set[int] = set()
    groups = []
    for node in sorted(neighbours):
        if node in assigned:
            continue
        members = sorted((m, s) for m, s in neighbours[node].items() if m not in assigned)
        if members:
            assigned.update([node, *(m for m, _ in members)])
            groups.append(Group(node, [(node, 1.0), *members]))
    return groups
