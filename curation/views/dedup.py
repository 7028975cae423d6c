"""The dedup page: settings, runs and duplicate groups side by side, with keep/duplicate actions.

Roles: admins see and act; reviewers see the report (they review items, but taking items out
of the queue is an admin's decision); annotators get 403; people outside the project 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from curation.dedup import services
from curation.dedup.selectors import group_views
from curation.models import DedupConfig, DedupRun, DuplicateGroup
from labeling.access import membership_for
from labeling.models import Role

ADMIN = [Role.ADMIN]
READERS = [Role.ADMIN, Role.REVIEWER]
GROUPS_A_PAGE = 20


class DedupConfigForm(forms.ModelForm):
    class Meta:
        model = DedupConfig
        fields = ["threshold", "mode", "ngram", "semantic", "semantic_threshold"]
        widgets = {
            "threshold": forms.NumberInput(attrs={"step": "0.01", "min": 0.5, "max": 1}),
            "semantic_threshold": forms.NumberInput(attrs={"step": "0.01", "min": 0.5, "max": 1}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only read when semantic mode is on: left empty, the stored (or default) one stays.
        self.fields["semantic_threshold"].required = False

    def clean_semantic_threshold(self) -> float:
        value = self.cleaned_data.get("semantic_threshold")
        return self.instance.semantic_threshold if value is None else float(value)


@login_required
def dedup(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=READERS)
    project = membership.project
    run = project.dedup_runs.first()
    shown = project.dedup_runs.filter(status=DedupRun.Status.SUCCEEDED).first()
    kind = request.GET.get("kind", DuplicateGroup.Kind.NEAR)
    groups = shown.groups if shown else DuplicateGroup.objects.none()
    page: Page[DuplicateGroup] = Paginator(
        groups.filter(kind=kind).order_by("number"), GROUPS_A_PAGE
    ).get_page(request.GET.get("page"))
    context = {
        "membership": membership, "project": project, "run": run, "shown": shown,
        "kind": kind, "kinds": DuplicateGroup.Kind.choices, "page": page,
        "groups": group_views(list(page.object_list)),
        "form": DedupConfigForm(instance=services.config_for(project)),
    }  # fmt: skip
    return render(request, "curation/dedup.html", context)


@login_required
def run_status(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The run's progress; htmx polls it every 2 s until the run has finished."""
    membership = membership_for(request.user, slug, roles=READERS)
    run = get_object_or_404(membership.project.dedup_runs, pk=pk)
    context = {"project": membership.project, "run": run}
    response = render(request, "curation/dedup.html#run", context)
    return HttpResponseStopPolling(response.content) if run.is_finished else response


@login_required
@require_POST
def start(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    services.start_dedup(
        project=membership.project, trigger=DedupRun.Trigger.BUTTON, created_by=request.user
    )
    return redirect("curation:dedup", slug=slug)


@login_required
@require_POST
def settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = DedupConfigForm(request.POST, instance=services.config_for(membership.project))
    if not form.is_valid():
        context = {"project": membership.project, "form": form}
        return render(request, "curation/dedup_settings.html", context, status=422)
    form.save()
    return redirect("curation:dedup", slug=slug)


@login_required
@require_POST
def decide(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """keep / duplicate one member, or keep-oldest for the whole group."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    group = get_object_or_404(DuplicateGroup, pk=pk, run__project=membership.project)
    action, item = request.POST.get("action"), request.POST.get("item", "")
    members = group.members.filter(item_id=int(item)) if item.isdigit() else group.members.none()
    item_ids = list(members.values_list("item_id", flat=True))
    if action == "keep":
        services.keep(project=membership.project, item_ids=item_ids)
    elif action == "duplicate":
        services.mark_duplicate(project=membership.project, item_ids=item_ids)
    elif action == "keep-oldest" and group.kind in services.ACTIONABLE:
        services.keep_oldest(run=group.run, groups=[group])
    else:
        return HttpResponse("Unknown action.", status=400)
    if request.htmx:  # type: ignore[attr-defined]
        context = {"project": membership.project, "group": group_views([group])[0],
                   "can_act": True}  # fmt: skip
        return render(request, "curation/_dedup_group.html", context)
    return redirect("curation:dedup", slug=slug)


@login_required
@require_POST
def keep_oldest(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Bulk: keep the oldest item of each prompt group of the run, mark the rest duplicate."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    run = get_object_or_404(membership.project.dedup_runs, pk=pk)
    services.keep_oldest(run=run)
    return redirect("curation:dedup", slug=slug)
