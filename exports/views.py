"""The admin's Export page: options with a live preview, jobs with progress, downloads.

Every view looks the project up through the caller's membership (labeling.access): outsiders
get a 404, reviewers and annotators a 403.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from exports import jobs
from exports.errors import InvalidOptions
from exports.forms import ExportForm
from exports.models import Export
from exports.preview import Preview, preview
from labeling.access import membership_for
from labeling.models import Membership, Project, Role

ADMIN = [Role.ADMIN]
RECENT = 50
# The live preview reads what the export reads, inside the web request: above this many
# annotations it would hold a gunicorn thread for seconds per keystroke, so it is off there
# and the finished job's manifest gives the counts (docs/exports.md).
LIVE_PREVIEW_LIMIT = 100_000
CONTENT_TYPES = {".jsonl": "application/jsonl", ".json": "application/json", ".md": "text/markdown"}


@login_required
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The options form (POST queues a job) and the project's past exports."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    project = membership.project
    form = ExportForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            export = jobs.start_export(
                project=project, options=form.options(), created_by=request.user
            )
        except InvalidOptions as error:
            form.add_problems(error)
        else:
            return redirect("exports:detail", slug=slug, pk=export.pk)
    context = _page_context(membership, form)
    return render(request, "exports/export.html", context, status=422 if form.errors else 200)


def _page_context(membership: Membership, form: ExportForm) -> dict[str, object]:
    project = membership.project
    return {
        "membership": membership,
        "project": project,
        "form": form,
        "exports": project.exports.select_related("created_by")[:RECENT],
    }


@login_required
@require_GET
def preview_counts(request: HttpRequest, slug: str) -> HttpResponse:
    """The preview fragment for the options in the query string (htmx, as options change)."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = ExportForm(request.GET, project=membership.project)
    annotations = membership.project.annotations.count()
    too_large = annotations > LIVE_PREVIEW_LIMIT
    result = None if too_large else _preview(form, membership.project)
    context = {
        "project": membership.project,
        "form": form,
        "preview": result,
        "too_large": too_large,
        "annotations": annotations,
        "limit": LIVE_PREVIEW_LIMIT,
    }
    return render(request, "exports/_preview.html", context, status=422 if form.errors else 200)


def _preview(form: ExportForm, project: Project) -> Preview | None:
    if not form.is_valid():
        return None
    try:
        return preview(project=project, options=form.options())
    except InvalidOptions as error:
        form.add_problems(error)
        return None


@login_required
def export_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A job's page; htmx polls the `job` partial every 2 s until the job has finished."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    export = get_object_or_404(membership.project.exports.select_related("created_by"), pk=pk)
    context = {
        "membership": membership,
        "project": membership.project,
        "export": export,
        "files": jobs.job_files(export),
    }
    if request.htmx and not request.htmx.history_restore_request:  # type: ignore[attr-defined]
        response = render(request, "exports/export_detail.html#job", context)
        return HttpResponseStopPolling(response.content) if export.is_finished else response
    return render(request, "exports/export_detail.html", context)


@login_required
@require_GET
def download(request: HttpRequest, slug: str, pk: int, name: str) -> FileResponse:
    """One file of a finished job, as an attachment: only names the job wrote are served."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    export = get_object_or_404(membership.project.exports, pk=pk)
    export.project = membership.project
    return file_response(export, name)


def file_response(export: Export, name: str) -> FileResponse:
    """Shared with the API. A name the job did not write is a 404, so no path is ever built
    from what the caller sent."""
    path = jobs.job_files(export).get(name)
    if path is None or not path.is_file():
        raise Http404("No such file in this export.")
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    filename = f"{export.project.slug}-export-{export.pk}-{name}"
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=filename, content_type=content_type
    )
