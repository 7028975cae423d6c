"""A median aggregate that runs in the database on both supported backends.

PostgreSQL has PERCENTILE_CONT; SQLite has no median, so `register_sqlite_functions` (wired in
LabelingConfig.ready) adds one, written in Python, to every new SQLite connection. Both take
the mean of the two middle values for an even count and skip NULLs, like statistics.median.
"""

from __future__ import annotations

import statistics
from typing import Any

from django.db.models import Aggregate, FloatField


class Median(Aggregate):
    function = "LABELING_MEDIAN"
    name = "Median"
    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # On a copy's attribute, not a keyword: Aggregate.as_sql passes `template` on itself
        # when it adds a FILTER (WHERE ...) clause.
        median = self.copy()
        median.template = "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
        return median.as_sql(compiler, connection, **extra)


class _SqliteMedian:
    """SQLite's aggregate protocol: step() per row, finalize() once per group."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return float(statistics.median(self.values)) if self.values else None


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("LABELING_MEDIAN", 1, _SqliteMedian)
