"""The agreement dashboard, for admins and reviewers."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from curation.agreement import dashboard, services
from curation.agreement.tasks import refresh_agreement
from labeling.access import membership_for
from labeling.models import Role

REVIEWERS = [Role.ADMIN, Role.REVIEWER]


@login_required
def agreement(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=REVIEWERS)
    report = services.latest(membership.project)
    context = {
        "membership": membership,
        "project": membership.project,
        "dashboard": dashboard.build(report) if report else None,
    }
    return render(request, "curation/agreement.html", context)


@login_required
@require_POST
def refresh(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=[Role.ADMIN])
    # force: an admin asking now skips the one-minute debounce, not the one-at-a-time guard.
    refresh_agreement.delay_on_commit(membership.project.pk, True)
    messages.success(request, "Recomputing agreement; reload in a moment.")
    return redirect("curation:agreement", slug=slug)
