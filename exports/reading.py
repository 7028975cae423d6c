"""Reading a project for an export: three ordered streams merged into one item at a time.

Items, their responses and their annotations are read by three queries ordered by item id, each
a chunked iterator (a server-side cursor on PostgreSQL), and merged here. No query returns a
row per annotation with the item's conversation attached: that would send each prompt and
response pair over the wire once per judgement. Memory holds one item and one chunk per query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    Exists,
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
        rows = _joined_tallies(tallies, ("item_id", *columns), chunk_size)
    else:
        rows = _merged_tallies(project, tallies, ("item_id", *columns), chunk_size)
    for pk, external_id, messages, metadata, status, texts, review, counts in rows:
        messages = _json(messages)
        group = prompt_group(messages) if grouped else ""
        metadata = {} if metadata == "{}" else _json(metadata) or {}
        yield pk, external_id, messages, metadata, status, group, texts or (), review, counts


def _joined_tallies(
    tallies: QuerySet[Any, Any], columns: tuple[str, ...], chunk_size: int
) -> Iterator[tuple[Any, ...]]:
    """One query: each counted item joined to its row, its response texts (an array, by
    position) and its review, in item order; the three-stream merge done by PostgreSQL."""
    query = tallies.query
    selected = (*query.extra_select, *query.values_select, *query.annotation_select)
    if selected != columns:
        raise ValueError(f"the query selects {selected}, not {columns}")
    tally_sql, params = query.get_compiler(using=tallies.db).as_sql()
    item, response, review = Item._meta, Response._meta, Review._meta
    quote = connections[tallies.db].ops.quote_name
    review_columns = ", ".join(
        f"rv.{quote(review.get_field(name).column)}" for name in REVIEW_FIELDS
    )
    item_columns = ", ".join(
        f"i.{quote((item.pk if name == 'pk' else item.get_field(name)).column)}"
        for name in ITEM_COLUMNS
    )
    width = len(REVIEW_FIELDS)
    # Identifiers from the models' metadata, quoted; values only as parameters.
    sql = (
        f"SELECT {item_columns},"  # noqa: S608
        f" ARRAY(SELECT r.{quote(response.get_field('text').column)}"
        f" FROM {quote(response.db_table)} r"
        f" WHERE r.{quote(response.get_field('item').column)} = i.{quote(item.pk.column)}"
        f" ORDER BY r.{quote(response.get_field('position').column)}),"
        f" {review_columns}, t.*"
        f" FROM ({tally_sql}) t"
        f" JOIN {quote(item.db_table)} i ON i.{quote(item.pk.column)} = t.{quote('item_id')}"
        f" LEFT JOIN {quote(review.db_table)} rv"
        f" ON rv.{quote(review.get_field('item').column)} = i.{quote(item.pk.column)}"
        f" ORDER BY t.{quote('item_id')}"
    )
    first_count = len(ITEM_COLUMNS) + 1 + width + 1  # past the tally's own item_id
    with connections[tallies.db].chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(chunk_size):
            for row in chunk:
                decision = row[6]
                yield (
                    *row[:6],
                    None if decision is None else ReviewRecord(*row[6 : 6 + width]),
                    row[first_count:],
                )


def _merged_tallies(
    project: Project, tallies: QuerySet[Any, Any], columns: tuple[str, ...], chunk_size: int
) -> Iterator[tuple[Any, ...]]:
    """`_joined_tallies` for databases without arrays: items, responses, reviews and counts
    read as ordered streams and merged here."""
    texts_of = _Groups(
        _plain_rows(_responses(project), chunk_size, columns=("item_id", "text")), itemgetter(0)
    )
    reviews_of = _Groups(_reviews(project).iterator(chunk_size=chunk_size), itemgetter(0))
    counted = _plain_rows(tallies, chunk_size, columns=columns)
    items = _plain_rows(_annotated_items(project), chunk_size, columns=ITEM_COLUMNS)
    for pk, external_id, messages, metadata, status in items:
        row = next(counted)  # both in item order, and every item listed has judgements
        if row[0] != pk:
            raise RuntimeError(f"item {pk}: judgements counted for item {row[0]}")
        texts = [text for _, text in texts_of.take(pk)]
        review = _review(reviews_of.take(pk))
        yield pk, external_id, messages, metadata, status, texts, review, row[1:]


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
