"""Model rows read and written by hand-written SQL, for the queue's hot statements.

A submit runs the same few statements on every request, and compiling them through the ORM
was most of its Python time (a lookup with three joins cost more than the rest of the
request). Here the ORM's own parts still do the work that matters, per field: column names,
the backend's and the field's converters on the way in (JSON, datetimes on SQLite), value
adaptation on the way out (`get_db_prep_save`, `pre_save` for auto_now_add), and
`Model.from_db` to build the instance. Only the SQL text is written once per model and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class _Shape:
    attnames: tuple[str, ...]
    columns: tuple[str, ...]  # quoted
    pk_index: int  # where the primary key is among the columns
    converters: tuple[tuple[int, Any, tuple[Converter, ...]], ...]  # (index, column, converters)


@cache
def _shape(model: type[Model], vendor: str) -> _Shape:
    """The model's concrete columns in `from_db`'s order, with their read converters."""
    fields: list[Field[Any, Any]] = list(model._meta.concrete_fields)
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((index, col, tuple(found)))
    attnames = tuple(field.attname for field in fields)
    pk_index = fields.index(model._meta.pk)  # type: ignore[arg-type]
    return _Shape(attnames, tuple(quoted(f) for f in fields), pk_index, tuple(converters))


def select_list(model: type[Model], alias: str) -> str:
    """`alias."col", ...` for every concrete column, in the order `load` reads them back."""
    return ", ".join(f"{alias}.{c}" for c in _shape(model, connection.vendor).columns)


def select_joined(tables: Sequence[tuple[type[Model], str]]) -> str:
    """The select list of several joined tables, given as (model, alias), for `load_joined`."""
    return ", ".join(select_list(model, alias) for model, alias in tables)


def load(model: type[M], row: Sequence[Any], start: int = 0) -> M:
    """The instance whose columns begin at `row[start]`, as the ORM would have built it."""
    shape = _shape(model, connection.vendor)
    values = list(row[start : start + len(shape.columns)])
    for index, col, converters in shape.converters:
        for convert in converters:
            values[index] = convert(values[index], col, connection)
    return model.from_db(connection.alias, shape.attnames, values)


Tables = tuple[tuple[type[Model], str], ...]  # (model, alias) of each joined table


def fetch_joined(tables: Tables, rest: str, params: Sequence[Any]) -> list[Any] | None:
    """`SELECT <every column of tables> <rest>` for one row, as one instance per table (None
    for an outer join's missing row), or None when no row matches.

    `rest` (FROM ... WHERE ...) is constant text with %s placeholders for `params`.
    """
    with connection.cursor() as cursor:
        cursor.execute(_joined_sql(tables, rest, connection.vendor), params)
        row = cursor.fetchone()
    return None if row is None else load_joined(row, tables)


@cache
def _joined_sql(tables: Tables, rest: str, vendor: str) -> str:
    return f"SELECT {select_joined(tables)} {rest}"


def load_joined(row: Sequence[Any], tables: Sequence[tuple[type[Model], str]]) -> list[Any]:
    """One instance per table of a `select_joined` row; None for an outer join's missing row."""
    loaded, start = [], 0
    for model, _ in tables:
        shape = _shape(model, connection.vendor)
        loaded.append(None if row[start + shape.pk_index] is None else load(model, row, start))
        start += len(shape.columns)
    return loaded


@cache
def _insert_sql(model: type[Model], vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
    names = ", ".join(quoted(f) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    table, pk = connection.ops.quote_name(meta.db_table), quoted(meta.pk)
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING {pk}"  # noqa: S608
    return sql, fields


def quoted(field: Field[Any, Any] | None) -> str:
    """The field's column name, quoted for SQL."""
    if field is None or field.column is None:
        raise TypeError(f"{field} has no column")
    return connection.ops.quote_name(field.column)


def insert(instance: Model) -> None:
    """`instance.save()` for a new row of a model with an auto primary key, in one statement.

    Sends no signals: for the hot path's own models, which have no receivers.
    """
    sql, fields = _insert_sql(type(instance), connection.vendor)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        (instance.pk,) = cursor.fetchone()
    instance._state.adding = False
    instance._state.db = connection.alias
