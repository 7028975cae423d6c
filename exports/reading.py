"""Reading a project for an export: three ordered streams merged into one item at a time.

Items, their responses and their annotations are read by three queries ordered by item id, each
a chunked iterator (a server-side cursor on PostgreSQL), and merged here. No query returns a
row per annotation with the item's conversation attached: that would send each prompt and
response pair over the wire once per judgement. Memory holds one item and one chunk per query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db.models import Exists, OuterRef

from exports.formats import with_system
from exports.rows import AnnotationRecord, ItemRecord, ReviewRecord
from exports.splits import prompt_group
from labeling.models import Annotation, Item, Project, Response, Review

CHUNK_SIZE = 2000
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
Progress = Callable[[int, int], None]  # (annotations read, annotations in all)


def read_items(
    project: Project, *, raw: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[ItemRecord]:
    """The project's annotated items in id order, each with its responses and annotations;
    `raw` reads every annotation field, otherwise those that aggregation uses."""
    fields = RAW_FIELDS if raw else PAIRWISE_FIELDS if project.is_pairwise else SFT_FIELDS
    annotated = Exists(Annotation.objects.filter(item=OuterRef("pk")))
    items = (
        Item.objects.filter(annotated, project=project)
        .order_by("pk")
        .values_list("pk", "external_id", "messages", "metadata", "status")
        .iterator(chunk_size=chunk_size)
    )
    responses: Iterable[tuple[int, str]] = ()
    if project.is_pairwise:
        responses = (
            Response.objects.filter(item__project=project)
            .order_by("item_id", "position")
            .values_list("item_id", "text")
            .iterator(chunk_size=chunk_size)
        )
    annotations = (
        Annotation.objects.filter(project=project)
        .order_by("item_id", "pk")
        .values("item_id", *fields.values())
        .iterator(chunk_size=chunk_size)
    )
    reviews = (
        Review.objects.filter(project=project)
        .order_by("item_id")
        .values_list("item_id", *REVIEW_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    return merge(items, responses, annotations, fields, reviews=reviews)


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
