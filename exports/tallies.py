"""Votes counted per item: what majority aggregation needs, without a record per judgement. Pure.

A majority export (pairwise, not `--per-annotator`) uses only counts: votes per choice, the
strengths of the decisive ones, how many judgements each filter left out, and which annotators
and guideline versions the kept judgements came from (for the manifest). The database counts
them (`reading.read_tallied`, one `TalliedRow` per item), so the export never turns a
judgement into a Python object; `Tally.of` counts the same things from records, so both paths
share the policy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from exports.rows import AnnotationRecord, ReviewRecord


class Tally(NamedTuple):
    """Votes per choice; `strength_a`/`strength_b` add up the strengths of the votes for A and
    for B, a judgement stored without one counting as 1 ("slightly better"). A named tuple: an
    export makes one per item, and a frozen dataclass took 5 µs to make."""

    a: int = 0
    b: int = 0
    tie: int = 0
    both_bad: int = 0
    strength_a: int = 0
    strength_b: int = 0

    @classmethod
    def of(cls, votes: Iterable[AnnotationRecord]) -> Tally:
        counts: Counter[str] = Counter()
        strengths: Counter[str] = Counter()
        for vote in votes:
            counts[vote.choice] += 1
            strengths[vote.choice] += vote.strength or 1
        return cls(
            counts["a"],
            counts["b"],
            counts["tie"],
            counts["both_bad"],
            strengths["a"],
            strengths["b"],
        )

    @property
    def non_decisive(self) -> int:
        return self.tie + self.both_bad

    @property
    def judgements(self) -> int:
        return self.a + self.b + self.non_decisive

    def mean_strength(self, choice: str) -> float:
        """The mean strength of the votes for `choice` ("a" or "b"), rounded as exported; the
        weakest, 1.0, when nobody voted for it (an adjudication against every vote)."""
        votes, total = (self.a, self.strength_a) if choice == "a" else (self.b, self.strength_b)
        # An int sum over an int count: the same float as summing float(strength) one by one.
        return round(total / votes, 4) if votes else 1.0

    def as_meta(self) -> dict[str, int]:
        return {"a": self.a, "b": self.b, "tie": self.tie, "both_bad": self.both_bad}


# An item as `reading.read_tallied` gives it, for `Pipeline.lines_of_tallied`: (pk, external
# id, messages, metadata, status, prompt group ("" unless asked for), response texts by
# position, review or None, counts). The counts are `reading._tally_columns`' in order: all
# judgements, those each filter left out (`Filters.rules()` order), the kept ones, votes for
# a, b, tie, both_bad, the strengths for a and b (NULL: none), the kept judgements' annotator
# ids and guideline versions (comma-separated, NULL: none) and how many had no version.
TalliedRow = tuple[int, str, Any, Any, str, str, Sequence[str], ReviewRecord | None, Sequence[Any]]
