"""Read models for pages: plain dataclasses built with a few aggregate queries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from labeling.models import Annotation, Assignment, Item, Membership, Project

REMAINING_CAP = 1000


@dataclass(frozen=True)
class AnnotatorProgress:
    done_today: int
    done_total: int
    seconds_per_item: float | None
    remaining: int  # capped at REMAINING_CAP + 1

    @property
    def remaining_label(self) -> str:
        return f"{REMAINING_CAP:,}+" if self.remaining > REMAINING_CAP else str(self.remaining)


@dataclass(frozen=True)
class ProjectOverview:
    items: int
    active_items: int
    annotations: int
    wanted: int
    live_leases: int

    @property
    def percent(self) -> int:
        return int(100 * self.annotations / self.wanted) if self.wanted else 0


def annotator_progress(membership: Membership) -> AnnotatorProgress:
    """Items this annotator labeled today and in total, their pace, and what is left for them."""
    since = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Annotation.objects.filter(project_id=membership.project_id, annotator=membership.user_id)
    stats = mine.aggregate(
        total=Count("pk"),
        today=Count("pk", filter=Q(created_at__gte=since)),
        avg_ms=Avg("time_spent_ms"),
    )
    # Counted on every item the page shows: stop at the cap instead of scanning a project of
    # a million items (with a NOT EXISTS per row) on each submit.
    claimable = Item.objects.claimable_by(membership.user_id, project=membership.project)
    remaining = claimable.values("pk")[: REMAINING_CAP + 1].count()
    avg = stats["avg_ms"]
    return AnnotatorProgress(
        done_today=stats["today"],
        done_total=stats["total"],
        seconds_per_item=round(avg / 1000, 1) if avg is not None else None,
        remaining=remaining,
    )


def project_overview(project: Project) -> ProjectOverview:
    items = Item.objects.filter(project=project).aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(status="active")),
        open_slots=Sum("open_slots", filter=Q(status="active")),
    )
    active = items["active"]
    return ProjectOverview(
        items=items["total"],
        active_items=active,
        annotations=Annotation.objects.filter(project=project).count(),
        wanted=active * project.overlap,
        live_leases=Assignment.objects.filter(
            project=project, status="active", expires_at__gt=timezone.now()
        ).count(),
    )


def heartbeat_interval(project: Project) -> int:
    """Seconds between heartbeats: a third of the lease, so two may be lost without harm."""
    return max(10, min(120, project.lease_seconds // 3))
