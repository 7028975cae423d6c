"""Membership-scoped lookups shared by the HTML views and the API.

Outsiders get a 404 (a project's existence is not disclosed); members with the wrong role a 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from labeling import rows
from labeling.models import Assignment, GuidelineVersion, Membership, Project, ReviewTask

Row = TypeVar("Row")


def one_or_none(rows: QuerySet[Any, Row]) -> Row | None:
    """The row that a lookup by a unique key matches, or None.

    `.first()` without its ORDER BY (by pk, or the model's default ordering): one row needs no
    order, and compiling one costs a good part of a short query's time in Python.
    """
    unordered = rows.order_by() if rows.ordered else rows
    return next(iter(unordered[:1]), None)


def membership_for(user: Any, slug: str, roles: Iterable[str] | None = None) -> Membership:
    """The user's membership in the project `slug`, with the project and guideline rows loaded.

    Every project page and endpoint starts here: its SQL is written out (`labeling.rows`).
    """
    found = None
    if user.is_authenticated:
        found = rows.fetch_joined(_MEMBERSHIP_JOIN, _MEMBERSHIP_FROM, (user.pk, slug))
    if found is None:
        raise Http404("No such project.")
    membership, project, current, acknowledged = found
    project.current_guideline = current
    membership.project, membership.acknowledged_guideline = project, acknowledged
    if roles is not None and membership.role not in roles:
        raise PermissionDenied("Your role in this project does not allow this.")
    return membership


_MEMBERSHIP_JOIN = (
    (Membership, "m"), (Project, "p"), (GuidelineVersion, "cg"), (GuidelineVersion, "ag")
)  # fmt: skip
_MEMBERSHIP_FROM = (
    "FROM labeling_membership m"
    " JOIN labeling_project p ON p.id = m.project_id"
    " LEFT JOIN labeling_guidelineversion cg ON cg.id = p.current_guideline_id"
    " LEFT JOIN labeling_guidelineversion ag ON ag.id = m.acknowledged_guideline_id"
    " WHERE m.user_id = %s AND p.slug = %s"
)


def own_assignment(user: Any, membership: Membership, pk: int) -> Assignment:
    """A lease of this user in this project; anyone else's is a 404."""
    assignment = one_or_none(
        Assignment.objects.filter(
            pk=pk, annotator=user, project_id=membership.project_id
        ).select_related("item")
    )
    if assignment is None:
        raise Http404("No such assignment.")
    assignment.project = membership.project
    return assignment


def own_review_task(membership: Membership, pk: int) -> ReviewTask:
    """A review task this member holds (or held) in this project; anyone else's is a 404."""
    task = one_or_none(
        ReviewTask.objects.filter(
            pk=pk, project_id=membership.project_id, reviewer_id=membership.user_id
        ).select_related("item")
    )
    if task is None:
        raise Http404("No such review.")
    task.project = membership.project
    return task
