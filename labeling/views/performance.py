"""Annotator performance: the admin's table and charts, and each member's own numbers."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from labeling import charts, performance
from labeling.access import membership_for
from labeling.models import Membership, Role

ADMIN = [Role.ADMIN]


@login_required
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    """Admins: one row per annotator, two charts; a name opens that annotator's days."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    stats = performance.project_performance(membership.project)
    totals = performance.daily_totals(stats)
    context = {
        "membership": membership,
        "project": membership.project,
        "stats": stats,
        "done_chart": charts.bar_chart(
            [(s.username, s.done, str(s.done)) for s in stats], title="Items done per annotator"
        ),
        "daily_chart": daily_chart(totals, "Items done per day, all annotators"),
        "days": performance.DAYS,
    }
    return render(request, "labeling/performance.html", context)


@login_required
def annotator(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    """Admins: one annotator's numbers, day by day."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    return _person(request, membership, user_id)


@login_required
def mine(request: HttpRequest, slug: str) -> HttpResponse:
    """Any member: their own numbers, nobody else's."""
    membership = membership_for(request.user, slug)
    return _person(request, membership, membership.user_id)


def _person(request: HttpRequest, membership: Membership, user_id: int) -> HttpResponse:
    found = performance.project_performance(membership.project, user_id=user_id)
    if not found:
        raise Http404("No such annotator in this project.")
    person = found[0]
    totals = performance.daily_totals(found)
    context: dict[str, Any] = {
        "membership": membership,
        "project": membership.project,
        "person": person,
        "own": user_id == membership.user_id,
        "daily": list(reversed(totals)),
        "daily_chart": daily_chart(totals, f"Items done per day by {person.username}"),
        "days": performance.DAYS,
    }
    return render(request, "labeling/annotator_performance.html", context)


def daily_chart(totals: list[tuple[Any, int]], title: str) -> Any:
    return charts.column_chart([(day.isoformat(), count) for day, count in totals], title=title)
