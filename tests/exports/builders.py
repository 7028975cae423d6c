"""Hand-built data for export tests: items, leases and annotations written directly.

The labeling services' validation and queue are tested in tests/labeling; here only the stored
rows matter, so each helper writes exactly the row it names (a submitted lease + annotation).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from exports.options import ExportOptions
from exports.services import run_export
from labeling.models import Annotation, Assignment, GuidelineVersion, Item
from tests.factories import ItemFactory, ResponseFactory, UserFactory


def at(minutes: int) -> datetime:
    """A fixed moment, `minutes` after 2025-03-01 12:00 UTC."""
    return datetime(2025, 3, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def annotators(*names: str):
    return [UserFactory(username=name) for name in names]


def _lease(item: Item, user, *, swapped: bool, minutes: int) -> Assignment:
    lease = Assignment.objects.create(
        project=item.project,
        item=item,
        annotator=user,
        status=Assignment.Status.SUBMITTED,
        swapped=swapped,
        expires_at=at(minutes + 10),
        finished_at=at(minutes),
    )
    Assignment.objects.filter(pk=lease.pk).update(created_at=at(minutes - 1))
    return lease


def vote(
    item: Item,
    user,
    choice: str,
    *,
    strength: int | None = 2,
    swapped: bool = False,
    guideline: GuidelineVersion | None = None,
    minutes: int = 0,
    **fields,
) -> Annotation:
    """A pairwise judgement in response terms ("a" = position 0)."""
    decisive = choice in ("a", "b")
    return _annotation(
        item,
        user,
        swapped=swapped,
        minutes=minutes,
        guideline=guideline,
        choice=choice,
        strength=strength if decisive else None,
        **fields,
    )


def answer(
    item: Item,
    user,
    text: str,
    *,
    rating: int | None,
    flags: tuple[str, ...] = (),
    guideline: GuidelineVersion | None = None,
    minutes: int = 0,
    **fields,
) -> Annotation:
    """An SFT response with its rating and flags."""
    return _annotation(
        item,
        user,
        swapped=False,
        minutes=minutes,
        guideline=guideline,
        response_text=text,
        rating=rating,
        flags=list(flags),
        **fields,
    )


def _annotation(item: Item, user, *, swapped: bool, minutes: int, **fields) -> Annotation:
    lease = _lease(item, user, swapped=swapped, minutes=minutes)
    annotation = Annotation.objects.create(
        assignment=lease, project=item.project, item=item, annotator=user, **fields
    )
    Annotation.objects.filter(pk=annotation.pk).update(created_at=at(minutes))
    annotation.refresh_from_db()
    return annotation


def pair_item(project, external_id: str, prompt: str, *, tag: str = "", **fields):
    """A pairwise item with responses "A: prompt" and "B: prompt" (plus a tag, for twins)."""
    content = hashlib.sha256(f"{prompt}|{tag}".encode()).hexdigest()
    item = ItemFactory(
        project=project, external_id=external_id, prompt=prompt, content_hash=content, **fields
    )
    ResponseFactory(item=item, position=0, text=f"A{tag}: {prompt}")
    ResponseFactory(item=item, position=1, text=f"B{tag}: {prompt}")
    return item


def export(project, path: Path | str, fmt: str = "dpo", *, force: bool = False, **options):
    return run_export(
        project=project,
        options=ExportOptions(format=fmt, **options),
        output=str(path),
        force=force,
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]
