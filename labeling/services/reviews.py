"""Review and adjudication: which finished items need a look, the reviewer's lease, decisions.

Triage: every finished item (as many annotations as the project's overlap) is triaged once
into a ReviewTask; the rules are pure functions below (docs/review.md). Claims lease one open
task with the same primitive as annotation claims (`assignments.lock_first`: SKIP LOCKED on
PostgreSQL, BEGIN IMMEDIATE on SQLite); a lapsed review lease is claimable again. Submitting
is a compare-and-set on the lease and idempotent by the client id, like an annotation submit.
A review never touches annotations: it adds a Review and one AnnotationVerdict per annotation.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from labeling.access import one_or_none
from labeling.models import (
    Annotation,
    AnnotationVerdict,
    GuidelineNote,
    Item,
    Membership,
    Project,
    Review,
    ReviewTask,
)
from labeling.services.annotations import (
    NOTE_LIMIT,
    TEXT_LIMIT,
    InvalidAnnotation,
)
from labeling.services.annotations import _client_id as _client_id  # one parser for both
from labeling.services.annotations import _text as _text
from labeling.services.assignments import QueueError, lock_first

DISAGREEMENT = "disagreement"
FLAGGED = "flagged"
LOW_RATING = "low_rating"
SAMPLE = "sample"
REASON_LABELS = {
    DISAGREEMENT: "votes disagree",
    FLAGGED: "flagged",
    LOW_RATING: "rated low",
    SAMPLE: "random sample",
}
TRIAGE_BATCH = 500
# How long an annotation may take to commit after its created_at: see triage_recent.
TRIAGE_SETTLE = timedelta(minutes=5)
LEASED = ReviewTask.Status.LEASED
Decision = Review.Decision


class ReviewLeaseLost(QueueError):
    """The review lease lapsed and another reviewer took the item."""


@dataclass(frozen=True)
class Vote:
    """What triage reads of one annotation."""

    choice: str = ""
    rating: int | None = None
    flags: tuple[str, ...] = ()


# Rules (pure) --------------------------------------------------------------------------------


def agreement(choices: Sequence[str]) -> float | None:
    """The most common answer's share of all answers (ties and both-bad are answers too)."""
    if not choices:
        return None
    return max(Counter(choices).values()) / len(choices)


def sampled(seed: int, item_id: int, percent: int) -> bool:
    """Deterministic by (seed, item id): the same items are sampled on every run."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def review_reasons(project: Project, item_id: int, votes: Sequence[Vote]) -> list[str]:
    """The rules that send a finished item to review, in a fixed order; [] when none does."""
    reasons = []
    share = agreement([vote.choice for vote in votes]) if project.is_pairwise else None
    if len(votes) > 1 and share is not None and share < project.review_min_agreement:
        reasons.append(DISAGREEMENT)
    if any(vote.flags for vote in votes):
        reasons.append(FLAGGED)
    low = project.review_max_rating
    if not project.is_pairwise and any((v.rating or 0) <= low for v in votes if v.rating):
        reasons.append(LOW_RATING)
    if not reasons and sampled(project.quality_seed, item_id, project.review_sample_percent):
        reasons.append(SAMPLE)
    return reasons


# Triage -------------------------------------------------------------------------------------


def triage(*, project: Project, limit: int = TRIAGE_BATCH, after_annotation: int = 0) -> int:
    """Triage up to `limit` finished, untriaged items; returns how many went to review.

    With `after_annotation`, only items with an annotation of a higher id are looked at (the
    periodic triage's increment). Idempotent: one task per item (a unique key), so concurrent
    triages cannot double one.
    """
    return len(_triage(project, limit, after_annotation)[1])


def _triage(project: Project, limit: int, after_annotation: int) -> tuple[int, list[int]]:
    """(items triaged, ids of those sent to review)."""
    finished = Item.objects.filter(
        project=project, status=Item.Status.ACTIVE, review_task__isnull=True
    )
    if after_annotation:
        recent = Annotation.objects.filter(project=project, pk__gt=after_annotation)
        finished = finished.filter(pk__in=recent.values("item_id"))
    item_ids = list(
        finished.annotate(answers=Count("annotations"))
        .filter(answers__gte=project.overlap)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not item_ids:
        return 0, []
    votes: dict[int, list[Vote]] = {pk: [] for pk in item_ids}
    rows = Annotation.objects.filter(item_id__in=item_ids).values_list(
        "item_id", "choice", "rating", "flags"
    )
    for item_id, choice, rating, flags in rows:
        votes[item_id].append(Vote(choice, rating, tuple(flags or ())))
    tasks = [_task(project, pk, review_reasons(project, pk, votes[pk])) for pk in item_ids]
    ReviewTask.objects.bulk_create(tasks, ignore_conflicts=True)
    return len(item_ids), _inserted_open(tasks)


def _inserted_open(tasks: list[ReviewTask]) -> list[int]:
    """Item ids of the open tasks this triage inserted itself.

    A concurrent triage may have inserted some of the same items first: the insert skips
    those and, with ignore_conflicts, does not say which. bulk_create stamps `created_at` on
    each object, so a task read back with another stamp is not ours.
    """
    ours = {t.item_id: t.created_at for t in tasks if t.status == ReviewTask.Status.OPEN}
    if not ours:
        return []
    stored = ReviewTask.objects.filter(item_id__in=ours)
    return sorted(
        item_id
        for item_id, created_at in stored.values_list("item_id", "created_at")
        if ours[item_id] == created_at
    )


def projects_to_triage() -> list[int]:
    """Ids of projects with annotations beyond their triage marker: newly finished items."""
    newer = Annotation.objects.filter(
        project=OuterRef("pk"), pk__gt=OuterRef("review_triaged_through")
    )
    return list(Project.objects.filter(Exists(newer)).order_by("pk").values_list("pk", flat=True))


def triage_recent(*, project: Project, limit: int = TRIAGE_BATCH) -> bool:
    """Triage the items annotated since the project's marker; True when all were looked at.

    The marker then moves to the newest annotation older than TRIAGE_SETTLE: an annotation
    whose id was drawn earlier may commit a moment later, so the last minutes stay in the next
    increment. Idempotent and safe to run concurrently: triage is, and the marker only grows.
    """
    marker = project.review_triaged_through
    settled = Annotation.objects.filter(
        project=project, pk__gt=marker, created_at__lt=timezone.now() - TRIAGE_SETTLE
    ).aggregate(last=Max("pk"))["last"]
    looked_at, _ = _triage(project, limit, marker)
    if looked_at >= limit:
        return False
    if settled is not None:
        Project.objects.filter(pk=project.pk, review_triaged_through__lt=settled).update(
            review_triaged_through=settled
        )
        project.review_triaged_through = max(marker, settled)
    return True


def reset_triage(*, project_id: int) -> None:
    """Look at every item again at the next triage: an item can finish without a new
    annotation (a gold item demoted, the overlap lowered). Idempotent."""
    Project.objects.filter(pk=project_id).update(review_triaged_through=0)


def _task(project: Project, item_id: int, reasons: list[str]) -> ReviewTask:
    status = ReviewTask.Status.OPEN if reasons else ReviewTask.Status.NOT_NEEDED
    return ReviewTask(project=project, item_id=item_id, reasons=reasons, status=status)


# Leases -------------------------------------------------------------------------------------


def current_review(*, membership: Membership) -> ReviewTask | None:
    return one_or_none(
        ReviewTask.objects.filter(
            project_id=membership.project_id, reviewer_id=membership.user_id, status=LEASED
        ).select_related("item")
    )


def next_review(*, membership: Membership) -> ReviewTask | None:
    """Triage what finished since the marker (the fallback of the periodic triage, cheap: it
    looks only at items annotated after it), then claim or renew the reviewer's lease."""
    triage_recent(project=membership.project)
    return claim_review(membership=membership)


def claim_review(*, membership: Membership) -> ReviewTask | None:
    """Renew the reviewer's lease or lease the next task. Idempotent for reloads."""
    try:
        return _claim_review(membership)
    except IntegrityError:
        # A concurrent claim by the same reviewer won the one-lease constraint: answer with it.
        return current_review(membership=membership)


@transaction.atomic
def _claim_review(membership: Membership) -> ReviewTask | None:
    until = timezone.now() + membership.project.lease_duration
    held = current_review(membership=membership)
    if held and _renew(held, membership.user_id, until):
        held.expires_at = until
        return held
    task = lock_first(_claimable(membership))
    if task is None:
        return None
    task.status, task.reviewer_id, task.expires_at = LEASED, membership.user_id, until
    task.save(update_fields=["status", "reviewer", "expires_at"])
    return task


def _claimable(membership: Membership) -> Any:
    """Open tasks, and leases that lapsed; never an item the reviewer annotated themselves."""
    own_work = Annotation.objects.filter(annotator_id=membership.user_id).values("item_id")
    lapsed = Q(status=LEASED, expires_at__lt=timezone.now())
    return (
        ReviewTask.objects.filter(project_id=membership.project_id)
        .filter(Q(status=ReviewTask.Status.OPEN) | lapsed)
        .exclude(item_id__in=own_work)
        .order_by("pk")
        .select_related("item")
    )


def _renew(task: ReviewTask, reviewer_id: int, until: Any) -> bool:
    live = ReviewTask.objects.filter(pk=task.pk, reviewer_id=reviewer_id, status=LEASED)
    return bool(live.update(expires_at=until))


def heartbeat(*, task: ReviewTask, reviewer: Any) -> datetime:
    """Push the review lease's expiry forward. Idempotent; ReviewLeaseLost once taken."""
    until = timezone.now() + task.project.lease_duration
    if not _renew(task, reviewer.pk, until):
        raise ReviewLeaseLost("This review's lease has lapsed.")
    return until


# Submit -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewResult:
    review: Review
    created: bool


def submit(*, task: ReviewTask, reviewer: Any, data: Mapping[str, Any]) -> ReviewResult:
    """Store the reviewer's decision. Idempotent by the client id: a repeat returns the first."""
    votes = list(Annotation.objects.filter(item_id=task.item_id).order_by("pk"))
    fields, rejected, note = clean(task.project, votes, data)
    try:
        return _submit(task, reviewer, votes, fields, rejected, note)
    except IntegrityError:
        existing = Review.objects.filter(reviewer=reviewer, client_id=fields["client_id"]).first()
        if existing is None:
            raise
        return ReviewResult(existing, created=False)


@transaction.atomic
def _submit(
    task: ReviewTask,
    reviewer: Any,
    votes: list[Annotation],
    fields: dict[str, Any],
    rejected: set[int],
    note: str,
) -> ReviewResult:
    existing = Review.objects.filter(reviewer=reviewer, client_id=fields["client_id"]).first()
    if existing is not None:
        return ReviewResult(existing, created=False)
    live = ReviewTask.objects.filter(pk=task.pk, reviewer=reviewer, status=LEASED)
    if not live.update(status=ReviewTask.Status.DONE, expires_at=None):
        raise ReviewLeaseLost("This review's lease has lapsed.")
    review = Review.objects.create(
        task=task, project_id=task.project_id, item_id=task.item_id, reviewer=reviewer, **fields
    )
    AnnotationVerdict.objects.bulk_create(
        AnnotationVerdict(review=review, annotation=vote, accepted=accepted)
        for vote, accepted in verdicts(review, votes, rejected)
    )
    if note:
        guideline_id = task.project.current_guideline_id
        GuidelineNote.objects.create(
            project_id=task.project_id,
            item_id=task.item_id,
            guideline_id=guideline_id,
            author=reviewer,
            text=note,
        )
    return ReviewResult(review, created=True)


def verdicts(
    review: Review, votes: Sequence[Annotation], rejected: set[int]
) -> list[tuple[Annotation, bool]]:
    """Pure: accepted or not, per annotation. Pairwise adjudication accepts the votes that agree
    with the adjudicated choice; otherwise the reviewer's per-response rejections decide."""
    if review.decision == Decision.REJECT:
        return [(vote, False) for vote in votes]
    if review.decision == Decision.ADJUDICATE and review.choice:
        return [(vote, vote.choice == review.choice) for vote in votes]
    return [(vote, vote.pk not in rejected) for vote in votes]


def clean(
    project: Project, votes: Sequence[Annotation], data: Mapping[str, Any]
) -> tuple[dict[str, Any], set[int], str]:
    """Validate a review: (model fields, rejected annotation ids, guideline note)."""
    errors: dict[str, str] = {}
    decision = data.get("decision")
    if decision not in Decision.values:
        errors["decision"] = "choose accept, reject or adjudicate"
    fields: dict[str, Any] = {
        "client_id": _client_id(data.get("client_id"), errors),
        "decision": decision,
        "comment": _text(data.get("comment"), "comment", NOTE_LIMIT, errors),
        "choice": "",
        "response_text": "",
    }
    if decision == Decision.ADJUDICATE:
        fields |= _label(project, data, errors)
    rejected = _rejected(data.get("rejected") or [], votes, errors)
    note = _text(data.get("guideline_note"), "guideline_note", NOTE_LIMIT, errors).strip()
    if errors:
        raise InvalidAnnotation(errors)
    return fields, rejected, note


def _label(project: Project, data: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    if project.is_pairwise:
        choice = data.get("choice")
        if choice not in Annotation.Choice.values:
            errors["choice"] = "adjudicate with a, b, tie or both_bad"
            return {}
        return {"choice": choice}
    text = _text(data.get("response"), "response", TEXT_LIMIT, errors)
    if not text.strip() and "response" not in errors:
        errors["response"] = "write the corrected response"
    return {"response_text": text}


def _rejected(raw: Any, votes: Sequence[Annotation], errors: dict[str, str]) -> set[int]:
    try:
        ids = {int(value) for value in raw}
    except (TypeError, ValueError):
        errors["rejected"] = "expected annotation ids"
        return set()
    if not ids <= {vote.pk for vote in votes}:
        errors["rejected"] = "only this item's annotations can be rejected"
    return ids
