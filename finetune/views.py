"""Pages for a project's admins: finetune runs, launching one, and a run's live page.

Validate -> scoped fetch -> one service call -> render. Every lookup starts from the caller's
membership: outsiders get 404, reviewers and annotators 403 (labeling.access).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from exports.models import Export
from finetune import paths, services, sources
from finetune.charts import run_charts
from finetune.errors import InvalidRun, RunFinished
from finetune.estimate import gib
from finetune.models import FinetuneRun
from finetune.options import FIELDS
from labeling.access import membership_for
from labeling.models import Membership, Role

ADMIN = [Role.ADMIN]


def _page(membership: Membership, **context: Any) -> dict[str, Any]:
    return {"membership": membership, "project": membership.project, **context}


def _exports(membership: Membership) -> Any:
    """Exports a run can train on: succeeded, in a format a method takes."""
    return membership.project.exports.filter(
        status=Export.Status.SUCCEEDED, format__in=sources.FORMAT_FOR_METHOD.values()
    )


@login_required
def runs(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    listed = (
        FinetuneRun.objects.for_project(membership.project)
        .select_related("created_by")
        .defer("metrics", "logs")  # the run page draws them; the list never shows them
    )
    context = _page(membership, runs=listed[:50], exports=_exports(membership)[:50])
    return render(request, "finetune/runs.html", context)


def _form_data(data: QueryDict) -> dict[str, Any]:
    return {key: data.get(key) for key in data if key != "csrfmiddlewaretoken"}


def _with_method(membership: Membership, data: dict[str, Any]) -> dict[str, Any]:
    """The form's data, its method defaulting to the chosen export's format."""
    if data.get("method"):
        return data
    dpo = _exports(membership).filter(pk=_int(data.get("export")), format="dpo").exists()
    return data | {"method": "dpo" if dpo else "sft"}


def _launch_context(membership: Membership, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    errors = extra.get("errors") or {}
    fields = [
        {
            "name": field.name,
            "checkbox": field.kind is bool,
            "value": data.get(field.name, _shown(field.default)),
            "help": field.help,
            "error": errors.get(field.name, ""),
        }
        for field in FIELDS
    ]
    return _page(
        membership,
        data=data,
        exports=_exports(membership)[:50],
        models=paths.available_models(),
        models_dir=paths.models_dir(),
        fields=fields,
        **extra,
    )


def _int(value: Any) -> int | None:
    return int(value) if str(value or "").isdigit() else None


def _shown(default: Any) -> Any:
    if isinstance(default, tuple):
        return " ".join(default)
    return "" if default is None else default


def _estimate(membership: Membership, data: dict[str, Any]) -> dict[str, Any]:
    """The estimate partial's context: the plan and its numbers, or why there is none."""
    try:
        plan, _ = services.plan_request(project=membership.project, data=data)
    except InvalidRun as invalid:
        return {"errors": invalid.errors}
    parts = [(label, gib(size)) for label, size in plan.estimate.parts() if size]
    device = f"{plan.device.name}, {gib(plan.device.memory)}" if plan.device else ""
    return {"plan": plan, "parts": parts, "total": gib(plan.estimate.total), "device": device}


@login_required
@vary_on_headers("HX-Request")
def launch(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    data = _with_method(membership, _form_data(request.POST or request.GET))
    if request.method == "POST":
        try:
            plan, force = services.plan_request(project=membership.project, data=data)
            run = services.create_run(plan=plan, created_by=request.user, force=force)
        except InvalidRun as invalid:
            context = _launch_context(membership, data, errors=invalid.errors)
            context |= {"estimate": _estimate(membership, data)}
            return render(request, "finetune/launch.html", context, status=422)
        return redirect("finetune:run", slug=slug, pk=run.pk)
    estimate = _estimate(membership, data) if data.get("export") else None
    context = _launch_context(membership, data, errors={}, estimate=estimate)
    return render(request, "finetune/launch.html", context)


@login_required
@require_POST
def estimate(request: HttpRequest, slug: str) -> HttpResponse:
    """The launch form's estimate, refreshed by htmx as the settings change."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    context = {"estimate": _estimate(membership, _form_data(request.POST))}
    return render(request, "finetune/launch.html#estimate", context)


@login_required
@vary_on_headers("HX-Request")
def run(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A run's page; htmx polls the `run` partial every 2 s until the run has finished."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    finetune = get_object_or_404(
        FinetuneRun.objects.for_project(membership.project).select_related("export"), pk=pk
    )
    context = _page(membership, run=finetune, charts=run_charts(finetune.method, finetune.metrics))
    if request.htmx and not request.htmx.history_restore_request:  # type: ignore[attr-defined]
        response = render(request, "finetune/run.html#run", context)
        return HttpResponseStopPolling(response.content) if finetune.is_finished else response
    return render(request, "finetune/run.html", context)


@login_required
@require_POST
def cancel(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    finetune = get_object_or_404(FinetuneRun.objects.for_project(membership.project), pk=pk)
    try:
        services.cancel(run=finetune)
    except RunFinished as finished:
        messages.error(request, str(finished))
    return redirect("finetune:run", slug=slug, pk=pk)
