"""Reading a project for an export: three ordered streams merged into one item at a time.

Items, their responses and their annotations are read by three queries ordered by item id, each
a chunked iterator (a server-side cursor on PostgreSQL), and merged here. No query returns a
row per annotation with the item's conversation attached: that would send each prompt and
response pair over the wire once per judgement. Memory holds one item and one chunk per query.
A majority over pairs (`read_tallied`) reads one row per item instead, with its votes counted:
on PostgreSQL one query joins the items, their texts, reviews and counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from json import loads
from operator import itemgetter
from typing import Any, cast

from django.db import connections
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    Exists,
    Field,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, NullIf

from exports.formats import with_system
from exports.policies import EXCLUDED_ANNOTATOR, GUIDELINE_VERSION, SINCE, Filters
from exports.rows import AnnotationRecord, ItemRecord, ReviewRecord
from exports.splits import prompt_group
from exports.tallies import TalliedRow
from labeling.models import Annotation, Item, Project, Response, Review

CHUNK_SIZE = 10_000
# AnnotationRecord field -> the lookup it is read from. Aggregation reads only what it uses:
# the lease join and the text columns cost more than the rest of the row on a big export.
BASE_FIELDS = {
    "id": "pk",
    "annotator_id": "annotator_id",
    "guideline_version": "guideline__number",
    "created_at": "created_at",
    "verdict": "verdict__accepted",  # a review's verdict (reviewer decisions win, issue 5)
}
PAIRWISE_FIELDS = BASE_FIELDS | {"choice": "choice", "strength": "strength"}
SFT_FIELDS = BASE_FIELDS | {"response_text": "response_text", "rating": "rating", "flags": "flags"}
RAW_FIELDS = BASE_FIELDS | {
    "claimed_at": "assignment__created_at",
    "swapped": "assignment__swapped",
    "time_spent_ms": "time_spent_ms",
    "choice": "choice",
    "strength": "strength",
    "criteria": "criteria",
    "rationale": "rationale",
    "response_text": "response_text",
    "draft_text": "draft_text",
    "rating": "rating",
    "flags": "flags",
    "notes": "notes",
}
REVIEW_FIELDS = ("decision", "choice", "response_text", "reviewer_id", "created_at", "comment")
ITEM_COLUMNS = ("pk", "external_id", "messages", "metadata", "status")
CHOICES = ("a", "b", "tie", "both_bad")  # in Tally's order
Progress = Callable[[int, int], None]  # (annotations read, annotations in all)


def read_items(
    project: Project, *, raw: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[ItemRecord]:
    """The project's annotated items in id order, each with its responses and annotations;
    `raw` reads every annotation field, otherwise those that aggregation uses."""
    fields = RAW_FIELDS if raw else PAIRWISE_FIELDS if project.is_pairwise else SFT_FIELDS
    responses: Iterable[tuple[int, str]] = ()
    if project.is_pairwise:
        responses = _plain_rows(_responses(project), chunk_size, columns=("item_id", "text"))
    annotations = (
        Annotation.objects.filter(project=project)
        .order_by("item_id", "pk")
        .values("item_id", *fields.values())
        .iterator(chunk_size=chunk_size)
    )
    return merge(
        _items(project, chunk_size),
        responses,
        annotations,
        fields,
        reviews=_reviews(project).iterator(chunk_size=chunk_size),
    )


def _items(project: Project, chunk_size: int) -> Iterator[tuple[int, str, Any, Any, str]]:
    """(pk, external id, messages, metadata, status) of the annotated items, in id order."""
    for pk, external_id, messages, metadata, status in _plain_rows(
        _annotated_items(project), chunk_size, columns=ITEM_COLUMNS
    ):
        yield pk, external_id, _json(messages), {} if metadata == "{}" else _json(metadata), status


def _annotated_items(project: Project) -> QuerySet[Item, tuple[Any, ...]]:
    annotated = Exists(Annotation.objects.filter(item=OuterRef("pk")))
    return Item.objects.filter(annotated, project=project).order_by("pk").values_list(*ITEM_COLUMNS)


def _json(value: Any) -> Any:
    # A JSON column comes as its text (Django has psycopg load jsonb as text; SQLite stores text).
    return json.loads(value) if isinstance(value, str) else value


def _plain_rows(
    queryset: QuerySet[Any, Any], chunk_size: int, *, columns: tuple[str, ...]
) -> Iterator[tuple[Any, ...]]:
    """The rows of a values_list() queryset as the driver returns them, in chunks (a server-side
    cursor on PostgreSQL). Django's iterator() calls a converter per value of some columns
    (aggregates, JSON); on a million rows that cost more than the rest of the export. Callers
    decode what needs it (JSON text) themselves."""
    query = queryset.query
    compiler = query.get_compiler(using=queryset.db)
    # The order Django's compiler selects in; values_list() reorders afterwards if it differs.
    selected = (*query.extra_select, *query.values_select, *query.annotation_select)
    if selected != columns:
        raise ValueError(f"the query selects {selected}, not {columns}")
    sql, params = compiler.as_sql()
    with connections[queryset.db].chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


def _responses(project: Project) -> QuerySet[Response, tuple[int, str]]:
    return (
        Response.objects.filter(item__project=project)
        .order_by("item_id", "position")
        .values_list("item_id", "text")
    )


def _reviews(project: Project) -> QuerySet[Review, tuple[Any, ...]]:
    return (
        Review.objects.filter(project=project)
        .order_by("item_id")
        .values_list("item_id", *REVIEW_FIELDS)
    )


def merge(
    items: Iterable[tuple[int, str, Any, Any, str]],
    responses: Iterable[tuple[int, str]],
    annotations: Iterable[Mapping[str, Any]],
    fields: Mapping[str, str] = RAW_FIELDS,
    *,
    reviews: Iterable[tuple[Any, ...]] = (),
) -> Iterator[ItemRecord]:
    """Join the streams sorted by item id; items without annotations are skipped."""
    texts_of = _Groups(responses, itemgetter(0))
    annotations_of = _Groups(annotations, itemgetter("item_id"))
    reviews_of = _Groups(reviews, itemgetter(0))
    for pk, external_id, messages, metadata, status in items:
        votes = annotations_of.take(pk)
        if not votes:
            continue
        yield ItemRecord(
            id=pk,
            key=external_id or f"item-{pk}",
            prompt=with_system(messages, metadata or {}),
            group=prompt_group(messages),
            status=status,
            responses=tuple(text for _, text in texts_of.take(pk)),
            annotations=tuple(_annotation(vote, fields) for vote in votes),
            review=_review(reviews_of.take(pk)),
        )


def read_tallied(
    project: Project, filters: Filters, *, grouped: bool, chunk_size: int = CHUNK_SIZE
) -> Iterator[TalliedRow]:
    """A pairwise project's annotated items in id order, each with its response texts, its
    review and its votes counted by the database (one row per item, not per judgement), as
    plain tuples (`TalliedRow`); `grouped` computes the items' prompt groups, which only splits
    need. On PostgreSQL one query returns all of it; elsewhere three ordered streams are
    merged."""
    columns = _tally_columns(filters)
    tallies = (
        Annotation.objects.filter(project=project)
        .order_by("item_id")
        .values("item_id")
        .annotate(**columns)
        .values_list("item_id", *columns)
    )
    if connections[tallies.db].vendor == "postgresql":
        return _joined_tallies(project, tallies, ("item_id", *columns), grouped, chunk_size)
    return _merged_tallies(project, tallies, ("item_id", *columns), grouped, chunk_size)


def _tallied_row(
    row: tuple[Any, ...], texts: Any, review: ReviewRecord | None, counts: Any, grouped: bool
) -> TalliedRow:
    """A `TalliedRow` from an item's columns (pk, external id, messages, metadata, status)."""
    messages = _json(row[2])
    metadata = row[3]
    metadata = {} if metadata == "{}" else _json(metadata) or {}
    group = prompt_group(messages) if grouped else ""
    return row[0], row[1], messages, metadata, row[4], group, texts or (), review, counts


def _joined_tallies(
    project: Project,
    tallies: QuerySet[Any, Any],
    columns: tuple[str, ...],
    grouped: bool,
    chunk_size: int,
) -> Iterator[TalliedRow]:
    """One query: the annotated items (`_annotated_items`) joined to their counts, their
    response texts (an array, by position) and their reviews, in item order; the merge of the
    streams done by PostgreSQL."""
    query = tallies.query
    selected = (*query.extra_select, *query.values_select, *query.annotation_select)
    if selected != columns:
        raise ValueError(f"the query selects {selected}, not {columns}")
    tally_sql, tally_params = query.get_compiler(using=tallies.db).as_sql()
    annotated = _annotated_items(project)
    items_sql, items_params = annotated.query.get_compiler(using=annotated.db).as_sql()
    quote = connections[tallies.db].ops.quote_name

    def column(model: type[Model], name: str) -> str:
        field = model._meta.pk if name == "pk" else model._meta.get_field(name)
        return quote(cast(str, cast("Field[Any, Any]", field).column))

    responses, reviews = (quote(m._meta.db_table) for m in (Response, Review))
    item_columns = ", ".join(f"i.{quote(name)}" for name in ITEM_COLUMNS)  # the aliases
    review_columns = ", ".join(f"rv.{column(Review, name)}" for name in REVIEW_FIELDS)
    width = len(REVIEW_FIELDS)
    # Identifiers from the models' metadata, quoted; values only as parameters.
    sql = (
        f"SELECT {item_columns}, ARRAY(SELECT r.{column(Response, 'text')}"  # noqa: S608
        f" FROM {responses} r WHERE r.{column(Response, 'item')} = i.{quote('pk')}"
        f" ORDER BY r.{column(Response, 'position')}), {review_columns}, t.*"
        f" FROM ({items_sql}) i JOIN ({tally_sql}) t"
        f" ON t.{quote('item_id')} = i.{quote('pk')}"
        f" LEFT JOIN {reviews} rv ON rv.{column(Review, 'item')} = i.{quote('pk')}"
        f" ORDER BY i.{quote('pk')}"
    )
    params = (*items_params, *tally_params)
    first_count = len(ITEM_COLUMNS) + 1 + width + 1  # past the tally's own item_id
    with connections[tallies.db].chunked_cursor() as cursor:
        cursor.execute(sql, params)
        for chunk in _prefetched(cursor, chunk_size):
            for row in chunk:
                # Inlined `_tallied_row` (a million calls): the item's columns, its texts, its
                # review (NULLs when it has none) and its counts.
                messages = row[2]
                messages = loads(messages) if type(messages) is str else messages
                metadata = row[3]
                yield (
                    row[0],
                    row[1],
                    messages,
                    {} if metadata == "{}" else _json(metadata) or {},
                    row[4],
                    prompt_group(messages) if grouped else "",
                    row[5],
                    None if row[6] is None else ReviewRecord(*row[6 : 6 + width]),
                    row[first_count:],
                )


def _prefetched(cursor: Any, chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The cursor's rows a chunk at a time, the next chunk fetched by a thread while the caller
    works on this one: PostgreSQL computes it (and psycopg waits for it, without the GIL) while
    Python builds lines. psycopg serializes the connection's use, so a query the caller makes
    meanwhile (a job's progress) waits for the fetch."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-fetch") as pool:
        pending = pool.submit(cursor.fetchmany, chunk_size)
        while chunk := pending.result():
            pending = pool.submit(cursor.fetchmany, chunk_size)
            yield chunk


def _merged_tallies(
    project: Project,
    tallies: QuerySet[Any, Any],
    columns: tuple[str, ...],
    grouped: bool,
    chunk_size: int,
) -> Iterator[TalliedRow]:
    """`_joined_tallies` for databases without arrays: items, responses, reviews and counts
    read as ordered streams and merged here."""
    texts_of = _Groups(
        _plain_rows(_responses(project), chunk_size, columns=("item_id", "text")), itemgetter(0)
    )
    reviews_of = _Groups(_reviews(project).iterator(chunk_size=chunk_size), itemgetter(0))
    counted = _plain_rows(tallies, chunk_size, columns=columns)
    items = _plain_rows(_annotated_items(project), chunk_size, columns=ITEM_COLUMNS)
    for item in items:
        pk = item[0]
        row = next(counted)  # both in item order, and every item listed has judgements
        if row[0] != pk:
            raise RuntimeError(f"item {pk}: judgements counted for item {row[0]}")
        texts = [text for _, text in texts_of.take(pk)]
        yield _tallied_row(item, texts, _review(reviews_of.take(pk)), row[1:], grouped)


class _Joined(Aggregate):
    """A group's values as one comma-separated string, NULLs left out (none: NULL)."""

    function = "GROUP_CONCAT"  # SQLite's; its separator is a comma
    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Set on a copy, not passed: with a filter, Aggregate.as_sql passes its own template.
        aggregate = self.copy()
        aggregate.function = "STRING_AGG"
        aggregate.template = "%(function)s((%(expressions)s)::text, ',')"
        return aggregate.as_sql(compiler, connection, **extra)


def _tally_columns(filters: Filters) -> dict[str, Aggregate]:
    """Counts per item: all judgements, those each filter leaves out (the first filter that
    applies, as `policies.filter_annotations` counts them), then the votes of the rest."""
    columns: dict[str, Aggregate] = {"total": Count("pk")}
    left_out: Q | None = None
    for rule in filters.rules()[1:]:
        condition = _filter_condition(rule, filters)
        first = condition if left_out is None else condition & ~left_out
        columns[f"filtered_{rule}"] = Count("pk", filter=first)
        left_out = condition if left_out is None else left_out | condition
    kept = Q() if left_out is None else ~left_out
    strength = Coalesce(NullIf("strength", Value(0)), Value(1))
    return columns | {
        "kept": Count("pk", filter=kept or None),
        **{choice: Count("pk", filter=kept & Q(choice=choice)) for choice in CHOICES},
        "strength_a": Sum(strength, filter=kept & Q(choice="a")),
        "strength_b": Sum(strength, filter=kept & Q(choice="b")),
        "annotators": _Joined("annotator_id", filter=kept or None),
        "versions": _Joined("guideline__number", filter=kept or None),
        "unversioned": Count("pk", filter=kept & Q(guideline__isnull=True)),
    }


def _filter_condition(rule: str, filters: Filters) -> Q:
    if rule == EXCLUDED_ANNOTATOR:
        return Q(annotator_id__in=sorted(filters.excluded_annotators))
    if rule == SINCE:
        return Q(created_at__lt=filters.since)
    if rule == GUIDELINE_VERSION:
        return Q(guideline__isnull=True) | ~Q(guideline__number=filters.guideline_version)
    raise ValueError(f"no condition for the filter {rule}")


def _annotation(row: Mapping[str, Any], fields: Mapping[str, str]) -> AnnotationRecord:
    values = {name: row[lookup] for name, lookup in fields.items()}
    if "flags" in values:
        values["flags"] = tuple(values["flags"] or ())
    if "criteria" in values:
        values["criteria"] = values["criteria"] or {}
    return AnnotationRecord(**values)


def _review(rows: list[tuple[Any, ...]]) -> ReviewRecord | None:
    # One review per item (a unique key), so a group holds at most one row.
    return ReviewRecord(*rows[0][1:]) if rows else None


class _Groups:
    """Consecutive rows with the same key, handed out by key in increasing order."""

    def __init__(self, rows: Iterable[Any], key: Callable[[Any], int]) -> None:
        self._groups = ((k, list(group)) for k, group in groupby(rows, key))
        self._head = next(self._groups, None)

    def take(self, key: int) -> list[Any]:
        """The rows for `key`, or none; groups of smaller keys (items skipped) are passed."""
        while self._head is not None and self._head[0] < key:
            self._head = next(self._groups, None)
        if self._head is None or self._head[0] != key:
            return []
        rows = self._head[1]
        self._head = next(self._groups, None)
        return rows


def count_annotations(project: Project) -> int:
    return Annotation.objects.filter(project=project).count()
