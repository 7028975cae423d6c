"""The database read behind a report: a project's annotations as integer columns, fast.

At a million annotations the read is most of a report's time, so:

- one query per table and no join: the annotations (integer columns only: choices and criteria
  are coded in SQL, each JSON key extracted once by a simple `CASE key WHEN ...`), then the
  few assignments that matter (gold or swapped), joined to the votes in numpy by id;
- guideline ids travel as ids; their version numbers come from a separate small query;
- on PostgreSQL the server packs each column into one bytea of big-endian int64s
  (`string_agg(int8send(...))`) and the client fetches that single row in binary: numpy views
  the bytes, with no Python object per row or value and no text parsing. (A binary COPY was
  measured too: the server side costs the same, and the client then handles a message per
  row, 3 s more at a million.)

Other databases (SQLite in development and tests) run the same queries through the cursor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import connection
from django.db.models import BigIntegerField, F, Func, IntegerField, Q, QuerySet, Value
from django.db.models.functions import Cast, Coalesce

from curation.agreement import stats
from curation.agreement.report import MISSING
from labeling.models import Annotation, Assignment, GuidelineVersion, Project

SWAPPED, GOLD = 1, 2  # bits of an assignment's state column


class EpochSeconds(Func):
    """A timestamp as whole Unix seconds (rounded down, as SQLite's strftime does)."""

    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # DATE_PART gives a double; EXTRACT a numeric, several times slower per row.
        template = "CAST(FLOOR(DATE_PART('epoch', %(expressions)s)) AS bigint)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Four percent signs: the template's % formatting halves them, and so does the SQLite
        # backend's placeholder conversion, leaving strftime's literal %s.
        template = "CAST(strftime('%%%%s', %(expressions)s) AS integer)"
        return self.as_sql(compiler, connection, template=template, **extra)


class AsInteger(Func):
    """A boolean as 0 or 1."""

    template = "CAST(%(expressions)s AS integer)"
    output_field = IntegerField()


class Code(Func):
    """The 0-based position of a text among `choices`; MISSING when it is none of them.

    A simple `CASE expression WHEN ...` evaluates the expression once per row, where Django's
    `Case(When(...))` repeats it in every branch (a JSON key lookup each time).
    """

    output_field = IntegerField()

    def __init__(self, expression: Any, choices: tuple[str, ...]) -> None:
        super().__init__(expression)
        self.choices = choices

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        # The codes are our own small integers, written inline; the choices are parameters.
        whens = " ".join(f"WHEN %s THEN {code}" for code in range(len(self.choices)))
        return f"CASE {sql} {whens} ELSE {MISSING} END", (*params, *self.choices)


BASE_COLUMNS = ("row_id", "item_key", "guideline_key", "created", "lease", "person_time")
CODE_BITS, CODES_PER_COLUMN = 8, 7  # codes -1..254, seven to a signed bigint


def annotation_rows(
    project: Project, codes: dict[str, Any], aliases: dict[str, Any]
) -> QuerySet[Annotation]:
    """The project's annotations as BASE_COLUMNS and then the `codes` packed (`unpack`), gold
    answers included: their assignments say which they are. `aliases` are helper expressions.

    Every column costs the server a conversion and an aggregate per row (`_fetch_packed`), so
    small values share a column: the annotator id and the time in ms (both under 2^31, the
    time never negative) as id * 2^32 + ms, and the codes eight bits each.
    """
    base: dict[str, Any] = {
        "row_id": F("id"),
        "item_key": F("item_id"),
        "guideline_key": Coalesce("guideline_id", Value(MISSING)),
        "created": EpochSeconds("created_at"),
        "lease": F("assignment_id"),
        "person_time": (
            Cast("annotator_id", BigIntegerField()) * _bigint(2**32) + F("time_spent_ms")
        ),
    }
    names = list(codes)
    for start in range(0, len(names), CODES_PER_COLUMN):
        group = names[start : start + CODES_PER_COLUMN]
        base[f"codes_{start}"] = sum(
            (
                (Cast(codes[name], BigIntegerField()) + 1) * _bigint(1 << (CODE_BITS * place))
                for place, name in enumerate(group)
            ),
            start=_bigint(0),
        )
    rows = Annotation.objects.filter(project_id=project.pk).order_by().alias(**aliases)
    return rows.annotate(**base).values_list(*base)


def _bigint(number: int) -> Value:
    """A bigint parameter: a plain Value(int) is sent as a 4-byte integer, and 2**32 is not."""
    return Value(number, output_field=BigIntegerField())


def read_annotations(
    project: Project, codes: dict[str, Any], aliases: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The project's annotations, gold included, as named int64 columns: "row_id", "item_key",
    "person", "guideline_key", "created", "time_ms", "lease" and each of `codes`."""
    rows = annotation_rows(project, codes, aliases)
    width = len(BASE_COLUMNS) + -(-len(codes) // CODES_PER_COLUMN)
    return unpack(fetch(rows, width), list(codes))


def unpack(matrix: np.ndarray, codes: list[str]) -> dict[str, np.ndarray]:
    """The columns of `annotation_rows`' matrix, the packed ones taken apart."""
    columns = {name: matrix[:, index] for index, name in enumerate(BASE_COLUMNS[:-1])}
    person_time = matrix[:, len(BASE_COLUMNS) - 1]
    columns["person"], columns["time_ms"] = person_time >> 32, person_time & (2**32 - 1)
    for index, name in enumerate(codes):
        packed = matrix[:, len(BASE_COLUMNS) + index // CODES_PER_COLUMN]
        shift = CODE_BITS * (index % CODES_PER_COLUMN)
        columns[name] = ((packed >> shift) & (2**CODE_BITS - 1)) - 1
    return columns


def assignment_states(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """(ids, SWAPPED | GOLD bits) of the project's assignments that are swapped or gold; every
    other assignment has state 0, so it need not be read."""
    rows = (
        Assignment.objects.filter(Q(swapped=True) | Q(gold=True), project_id=project.pk)
        .order_by()
        .annotate(state=AsInteger("swapped") * SWAPPED + AsInteger("gold") * GOLD)
        .values_list("id", "state")
    )
    matrix = fetch(rows, 2)
    return matrix[:, 0], matrix[:, 1]


def guideline_numbers(keys: np.ndarray) -> np.ndarray:
    """The version number of each guideline id (MISSING stays MISSING), from one small query."""
    distinct, position = stats.dense_index(keys)
    numbers = dict(
        GuidelineVersion.objects.filter(pk__in=distinct[distinct != MISSING].tolist()).values_list(
            "pk", "number"
        )
    )
    table = np.array([numbers.get(key, MISSING) for key in distinct.tolist()], dtype=np.int64)
    return table[position]


def lookup(keys: np.ndarray, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values[i] where ids[i] == key, for each key; 0 where no id matches.

    Ids are a few dense ranges in practice, so a table over their span does it in two passes;
    a sort and a binary search otherwise.
    """
    if len(ids) == 0 or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    low, high = int(ids.min()), int(ids.max())
    if high - low < 4 * (len(ids) + len(keys)) + 4096:
        table = np.zeros(high - low + 1, dtype=np.int64)
        table[ids - low] = values
        inside = (keys >= low) & (keys <= high)
        return np.where(inside, table[np.clip(keys - low, 0, high - low)], 0)
    order = np.argsort(ids)
    position = np.minimum(np.searchsorted(ids, keys, sorter=order), len(ids) - 1)
    found = ids[order[position]] == keys
    return np.where(found, values[order[position]], 0)


def fetch(rows: QuerySet[Any], width: int) -> np.ndarray:
    """The query's rows (integers, never NULL) as an int64 votes x width matrix."""
    sql, params = rows.query.sql_with_params()
    if connection.vendor == "postgresql":
        return _fetch_packed(sql, params, width)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, width)


def _fetch_packed(sql: str, params: Any, width: int) -> np.ndarray:
    """Each column packed by the server into one bytea of big-endian int64s, fetched binary.

    One result row in all, so no Python work per annotation (a COPY would hand over a message
    per row). A single aggregate node feeds every row to all its aggregates in the same order,
    so the columns stay aligned. A bytea holds up to 1 GB: 134 million votes.
    """
    packed = ", ".join(
        f"string_agg(int8send(CAST(column{n} AS bigint)), ''::bytea)" for n in range(1, width + 1)
    )
    aliases = ", ".join(f"column{n}" for n in range(1, width + 1))
    # The inner SQL is the ORM's (values as parameters); the rest is fixed text.
    query = f"SELECT {packed} FROM ({sql}) AS votes ({aliases})"  # noqa: S608
    connection.ensure_connection()
    with connection.connection.cursor(binary=True) as cursor:
        cursor.execute(query, params)
        return unpack_columns(cursor.fetchone(), width)


def unpack_columns(packed: Any, width: int) -> np.ndarray:
    """Columns of big-endian int64s (bytes; None for no rows at all) as a rows x width matrix."""
    if packed is None or packed[0] is None:
        return np.zeros((0, width), dtype=np.int64)
    columns = [np.frombuffer(bytes(column), dtype=">i8") for column in packed]
    if len(columns) != width or len({len(column) for column in columns}) != 1:
        raise ValueError("packed columns of different lengths")
    return np.stack(columns, axis=1).astype(np.int64)
