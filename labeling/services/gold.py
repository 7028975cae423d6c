"""Gold (honeypot) items: expected labels, grading, and pausing annotators who miss too many.

A gold item has status `gold` and a GoldLabel. The claim serves one in `project.gold_percent`
of claims (labeling.services.assignments); it looks like any other item. Each submit of a gold
lease is graded here, and an annotator whose accuracy falls below the project's threshold,
after at least `gold_min_answers` gold answers, is paused until an admin resumes them.
Gold items are never exported: exports keep `active` items only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Max, Min
from django.utils import timezone

from labeling.models import Annotation, Assignment, GoldLabel, Item, Membership, Project

logger = logging.getLogger(__name__)


class GoldError(Exception):
    """An expected label that does not fit the project; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Promotion:
    """What one promote pass did: how many items became gold, and whether more qualify."""

    promoted: int
    more: bool


@dataclass(frozen=True)
class GoldScore:
    answered: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass(frozen=True)
class GoldAnswer:
    annotation: Annotation
    label: GoldLabel
    correct: bool


def is_correct(label: GoldLabel, annotation: Annotation) -> bool:
    """Pure: a pairwise answer must equal the expected choice; an SFT one must be rated in the
    expected range and carry every expected flag."""
    if label.choice:
        return annotation.choice == label.choice
    rating = annotation.rating or 0
    if label.min_rating is not None and rating < label.min_rating:
        return False
    if label.max_rating is not None and rating > label.max_rating:
        return False
    return set(label.flags) <= set(annotation.flags or ())


@transaction.atomic
def mark_gold(*, item: Item, created_by: Any, **expected: Any) -> GoldLabel:
    """Make an active item gold with its expected label. Idempotent: marking again replaces
    the label.

    Only an active (or already gold) item may become gold: demoting turns a gold item back
    into an active one, so a duplicate or filtered item made gold would come back into the
    queue and the exports by way of a demotion.
    """
    _check_expected(item.project, expected)
    # The conditional UPDATE locks the row, so a concurrent dedup cannot slip in between.
    allowed = [Item.Status.ACTIVE, Item.Status.GOLD]
    if not Item.objects.filter(pk=item.pk, status__in=allowed).update(status=Item.Status.GOLD):
        current = Item.objects.filter(pk=item.pk).values_list("status", flat=True).first()
        raise GoldError(f"only active items can be gold items; this one is {current}", field="item")
    label, _ = GoldLabel.objects.update_or_create(
        item=item, defaults={"project": item.project, "created_by": created_by, **expected}
    )
    item.status = Item.Status.GOLD
    return label


@transaction.atomic
def demote(*, item: Item) -> bool:
    """Turn a gold item back into a regular one; False when it was not gold. Idempotent.

    The expected label goes, so the answers given to it stop counting as gold answers; they
    stay as ordinary annotations of the item. Live gold leases on it become ordinary leases
    (their submit is no longer graded), and the item's open slots are counted afresh from its
    live and submitted leases: gold leases took no slot, so the old number means nothing.
    """
    locked = Item.objects.select_for_update().filter(pk=item.pk, status=Item.Status.GOLD)
    if not locked.exists():
        return False
    GoldLabel.objects.filter(item=item).delete()
    leases = Assignment.objects.filter(item=item)
    leases.filter(status=Assignment.Status.ACTIVE, gold=True).update(gold=False)
    taken = leases.filter(status__in=[Assignment.Status.ACTIVE, Assignment.Status.SUBMITTED])
    open_slots = max(0, item.project.overlap - taken.count())
    Item.objects.filter(pk=item.pk).update(status=Item.Status.ACTIVE, open_slots=open_slots)
    item.status, item.open_slots = Item.Status.ACTIVE, open_slots
    # It may be finished already (enough answers): let the next triage look at it.
    Project.objects.filter(pk=item.project_id).update(review_triaged_through=0)
    logger.info("gold.demoted", extra={"item_id": item.pk})
    return True


def _check_expected(project: Project, expected: dict[str, Any]) -> None:
    if project.is_pairwise and not expected.get("choice"):
        raise GoldError("A pairwise gold item needs the expected choice.", field="choice")
    if not project.is_pairwise and expected.get("choice"):
        raise GoldError(
            "An SFT gold item expects a rating range and flags, not a choice.", field="choice"
        )
    unknown = set(expected.get("flags", ())) - set(project.flags)
    if unknown:
        raise GoldError(f"Unknown flags: {', '.join(sorted(unknown))}", field="flags")
    _check_ratings(project, expected.get("min_rating"), expected.get("max_rating"))


def _check_ratings(project: Project, low: int | None, high: int | None) -> None:
    """The range must fit the scale and be ordered; the DB check would otherwise answer a 500."""
    scale = project.rating_scale
    for name, value in (("min_rating", low), ("max_rating", high)):
        if value is not None and not 1 <= value <= scale:
            raise GoldError(f"{name} must be between 1 and {scale}", field=name)
    if low is not None and high is not None and low > high:
        raise GoldError("max_rating must not be below min_rating", field="max_rating")


PROMOTE_BATCH = 500


@transaction.atomic
def promote_unanimous(
    *, project: Project, min_votes: int, created_by: Any, limit: int | None = None
) -> Promotion:
    """Make gold up to `limit` (PROMOTE_BATCH) active items whose >= `min_votes` answers all agree.

    Pairwise: the same choice; SFT: the same rating (expected exactly). A fixed number of
    queries whatever the batch, in one transaction. Idempotent: promoted items are no longer
    active, so a rerun picks the next batch (or nothing).
    """
    limit = PROMOTE_BATCH if limit is None else limit  # read late: tests patch the batch
    agreed = _unanimous_items(project, min_votes, limit + 1)
    batch = agreed[:limit]
    # Lock the batch and keep the items still active: a concurrent promote, dedup or manual
    # mark may have changed them since the aggregate read them.
    active = set(
        Item.objects.select_for_update(no_key=True)
        .filter(pk__in=[item_id for item_id, _ in batch], status=Item.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    labels = [
        GoldLabel(
            project=project, item_id=item_id, created_by=created_by, **_expected(project, value)
        )
        for item_id, value in batch
        if item_id in active
    ]
    GoldLabel.objects.bulk_create(labels)
    Item.objects.filter(pk__in=active).update(status=Item.Status.GOLD)
    logger.info("gold.promoted", extra={"project_id": project.pk, "count": len(labels)})
    return Promotion(promoted=len(labels), more=len(agreed) > limit)


def _unanimous_items(project: Project, min_votes: int, limit: int) -> list[tuple[int, Any]]:
    """(item id, the agreed value) of up to `limit` unanimous active items, in one query.

    Unanimous: at least `min_votes` answers, none without a value, and MIN = MAX.
    """
    field = "choice" if project.is_pairwise else "rating"
    rows = (
        Annotation.objects.filter(project=project, item__status=Item.Status.ACTIVE)
        .values("item_id")
        .annotate(votes=Count("pk"), valued=Count(field), low=Min(field), high=Max(field))
        .filter(votes__gte=min_votes, valued=F("votes"), low=F("high"))
    )
    if project.is_pairwise:
        rows = rows.filter(low__gt="")  # a blank choice is no answer
    return list(rows.order_by("item_id").values_list("item_id", "low")[:limit])


def _expected(project: Project, value: Any) -> dict[str, Any]:
    """The label a unanimous answer makes: the choice, or exactly the rating."""
    if project.is_pairwise:
        return {"choice": value}
    return {"min_rating": value, "max_rating": value}


def answers(membership: Membership) -> list[GoldAnswer]:
    """The member's graded gold answers since they were last resumed, oldest first."""
    rows = Annotation.objects.filter(
        project_id=membership.project_id,
        annotator_id=membership.user_id,
        assignment__gold=True,
        item__gold_label__isnull=False,
    ).select_related("item__gold_label", "item")
    if membership.gold_counted_since is not None:
        rows = rows.filter(created_at__gte=membership.gold_counted_since)
    graded = []
    for annotation in rows.order_by("pk"):
        label = annotation.item.gold_label
        graded.append(GoldAnswer(annotation, label, is_correct(label, annotation)))
    return graded


def score(graded: Iterable[GoldAnswer]) -> GoldScore:
    graded = list(graded)
    return GoldScore(answered=len(graded), correct=sum(answer.correct for answer in graded))


def record_answer(*, annotation: Annotation) -> bool:
    """Grade the annotator after a gold submit; pause them when below the threshold.

    Returns whether they are paused now. Idempotent: pausing an already paused member keeps
    the first pause. Runs inside the submit's transaction.
    """
    membership = Membership.objects.select_related("project").get(
        project_id=annotation.project_id, user_id=annotation.annotator_id
    )
    project = membership.project
    result = score(answers(membership))
    accuracy = result.accuracy
    if result.answered < project.gold_min_answers or accuracy is None:
        return False
    if accuracy >= project.gold_min_accuracy:
        return False
    threshold = f"{project.gold_min_accuracy:.0%}"
    reason = f"Gold accuracy {result.correct}/{result.answered} is below {threshold}."
    paused = Membership.objects.filter(pk=membership.pk, paused_at__isnull=True).update(
        paused_at=timezone.now(), paused_reason=reason
    )
    if paused:
        logger.info("gold.paused", extra={"membership_id": membership.pk})
    return True


def resume(*, membership: Membership) -> None:
    """Let a paused annotator claim again; earlier gold answers stop counting. Idempotent."""
    now = timezone.now()
    Membership.objects.filter(pk=membership.pk, paused_at__isnull=False).update(
        paused_at=None, paused_reason="", gold_counted_since=now
    )
    membership.refresh_from_db(fields=["paused_at", "paused_reason", "gold_counted_since"])


def paused_members(project: Project) -> list[Membership]:
    return list(
        project.memberships.filter(paused_at__isnull=False)
        .select_related("user")
        .order_by("paused_at")
    )
