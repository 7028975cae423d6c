"""What an export would hold, before it runs: rows per split and what each rule leaves out.

The preview runs the export's own code (`services.stream`: the same reading, filters, policy,
format and split) and counts the lines instead of writing them, so its counts are exactly the
counts the export's manifest will show on the same data. It reads as much as the export does;
only the writing is saved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from exports import reading, services
from exports.options import ExportOptions
from exports.pipeline import Pipeline
from labeling.models import Project


@dataclass(frozen=True)
class Preview:
    counts: dict[str, int]  # split -> rows, every split named, in the export's order
    dropped: dict[str, dict[str, int]]  # {"annotations": {rule: n}, "items": {rule: n}}
    annotations: int  # annotations read

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "counts": self.counts,
            "dropped": self.dropped,
            "annotations": self.annotations,
        }


def preview(*, project: Project, options: ExportOptions) -> Preview:
    """Count what an export with these options would write; InvalidOptions if they do not fit.
    Reads only: calling it any number of times changes nothing."""
    _, spec = services.prepare(project, options)
    pipeline = Pipeline(spec)
    counts = Counter(dict.fromkeys(spec.splitter.names, 0))
    read = _Read()
    with services.read_snapshot():
        for split, _line in services.stream(project, pipeline, read, reading.CHUNK_SIZE):
            counts[split] += 1
    return Preview(dict(counts), pipeline.stats.dropped.as_dict(), read.done)


class _Read:
    """A progress callback that keeps the last count: the annotations read."""

    done = 0

    def __call__(self, done: int, total: int) -> None:
        self.done = done
