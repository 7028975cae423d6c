"""Annotator performance: per annotator of a project, a handful of aggregate queries in all.

Numbers (docs/review.md, "Annotator performance"):
- done: annotations submitted (gold answers included: they are work like any other);
- per day: annotations per calendar day (the site's time zone), the last DAYS days;
- median active seconds: the median of `time_spent_ms` (active time as the page measured it:
  visible tab, touched within the last minute), leaving out 0 (an API client that sent none);
- gold accuracy: gold answers graded against the expected label (all of them, including those
  before an admin resumed the annotator), with `gold.is_correct`, the grading of the queue;
- review acceptance: accepted verdicts of all reviewed annotations;
- skip rate: skipped leases of the leases the annotator finished (submitted or skipped);
  lapsed leases count in neither.
Agreement with the majority and position bias are in curation's agreement report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.aggregates import Median
from labeling.models import Annotation, Assignment, Membership, Project, Role
from labeling.services import gold

DAYS = 30
GOLD_FIELDS = ("choice", "min_rating", "max_rating", "flags")
ANSWER_FIELDS = ("annotator_id", "choice", "rating", "flags", "item_id", "item__id")
Status = Assignment.Status


@dataclass(frozen=True)
class AnnotatorStats:
    user_id: int
    username: str
    role: str
    paused: bool
    done: int = 0
    last_at: Any = None
    median_ms: float | None = None
    reviewed: int = 0
    accepted: int = 0
    gold_answered: int = 0
    gold_correct: int = 0
    skipped: int = 0
    finished: int = 0
    per_day: dict[date, int] = field(default_factory=dict)

    @property
    def median_seconds(self) -> float | None:
        return None if self.median_ms is None else round(self.median_ms / 1000, 1)

    @property
    def gold_accuracy(self) -> float | None:
        return _rate(self.gold_correct, self.gold_answered)

    @property
    def acceptance_rate(self) -> float | None:
        return _rate(self.accepted, self.reviewed)

    @property
    def skip_rate(self) -> float | None:
        return _rate(self.skipped, self.finished)

    @property
    def recent(self) -> int:
        """Annotations in the last DAYS days."""
        return sum(self.per_day.values())


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def days(today: date | None = None) -> list[date]:
    """The last DAYS calendar days, oldest first, ending today."""
    today = today or timezone.localdate()
    return [today - timedelta(days=back) for back in range(DAYS - 1, -1, -1)]


def project_performance(project: Project, user_id: int | None = None) -> list[AnnotatorStats]:
    """Every annotator of the project (and anyone else who annotated), by username.

    Five queries whatever the number of annotators; `user_id` narrows them to one person.
    """
    scope: dict[str, Any] = {"project": project}
    if user_id is not None:
        scope["annotator_id"] = user_id
    merged: dict[int, dict[str, Any]] = defaultdict(dict)
    for source in (_annotation_counts, _lease_counts, _gold_counts, _daily_counts):
        for annotator_id, values in source(scope).items():
            merged[annotator_id].update(values)
    people = project.memberships.select_related("user").order_by("user__username")
    if user_id is not None:
        people = people.filter(user_id=user_id)
    return [
        _stats(member, merged.get(member.user_id, {}))
        for member in people
        if user_id is not None or member.role == Role.ANNOTATOR or member.user_id in merged
    ]


def _stats(member: Membership, values: dict[str, Any]) -> AnnotatorStats:
    return AnnotatorStats(
        user_id=member.user_id,
        username=member.user.get_username(),
        role=member.role,
        paused=member.paused_at is not None,
        **values,
    )


def _annotation_counts(scope: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rows = (
        Annotation.objects.filter(**scope)
        .values("annotator_id")
        .annotate(
            done=Count("pk"),
            last_at=Max("created_at"),
            median_ms=Median("time_spent_ms", filter=Q(time_spent_ms__gt=0)),
            reviewed=Count("verdict"),
            accepted=Count("verdict", filter=Q(verdict__accepted=True)),
        )
        .order_by()
    )
    return _by_annotator(rows)


def _lease_counts(scope: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rows = (
        Assignment.objects.filter(**scope)
        .values("annotator_id")
        .annotate(
            skipped=Count("pk", filter=Q(status=Status.SKIPPED)),
            finished=Count("pk", filter=Q(status__in=[Status.SKIPPED, Status.SUBMITTED])),
        )
        .order_by()
    )
    return _by_annotator(row for row in rows if row["finished"])


def _by_annotator(rows: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    return {
        row["annotator_id"]: {k: v for k, v in row.items() if k != "annotator_id"} for row in rows
    }


def _gold_counts(scope: dict[str, Any]) -> dict[int, dict[str, Any]]:
    # Few rows (a few percent of claims), graded in Python by the queue's own rule.
    answers = (
        Annotation.objects.filter(**scope, assignment__gold=True, item__gold_label__isnull=False)
        .select_related("item__gold_label")
        .only(*ANSWER_FIELDS, *(f"item__gold_label__{name}" for name in GOLD_FIELDS))
        .order_by()
    )
    counts: dict[int, dict[str, Any]] = defaultdict(lambda: {"gold_answered": 0, "gold_correct": 0})
    for answer in answers:
        row = counts[answer.annotator_id]
        row["gold_answered"] += 1
        row["gold_correct"] += gold.is_correct(answer.item.gold_label, answer)
    return dict(counts)


def _daily_counts(scope: dict[str, Any]) -> dict[int, dict[str, Any]]:
    first = days()[0]
    rows = (
        Annotation.objects.filter(**scope, created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("annotator_id", "day")
        .annotate(count=Count("pk"))
        .order_by()
    )
    per_day: dict[int, dict[str, Any]] = defaultdict(lambda: {"per_day": {}})
    for row in rows:
        per_day[row["annotator_id"]]["per_day"][row["day"]] = row["count"]
    return dict(per_day)


def daily_totals(stats: list[AnnotatorStats]) -> list[tuple[date, int]]:
    """Annotations per day over the last DAYS days, summed over `stats`, oldest first."""
    return [(day, sum(person.per_day.get(day, 0) for person in stats)) for day in days()]
