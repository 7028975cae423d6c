"""Pages for admins: projects, members, imports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from labeling.access import membership_for
from labeling.forms import ImportForm, InviteForm, ProjectForm, ProjectSettingsForm
from labeling.models import Membership, Role
from labeling.selectors import annotator_progress, project_overview
from labeling.services import imports, projects

ADMIN = [Role.ADMIN]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.visible_to(request.user).select_related("project").order_by("project")
    )
    return render(request, "labeling/home.html", {"memberships": memberships})


@login_required
def create_project(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only site staff create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = projects.create_project(created_by=request.user, **form.cleaned_data)
        return redirect("labeling:project", slug=project.slug)
    return render(
        request, "labeling/project_form.html", {"form": form}, status=422 if form.errors else 200
    )


@login_required
def project(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    context = {
        "membership": membership,
        "project": membership.project,
        "progress": annotator_progress(membership),
        "overview": project_overview(membership.project) if membership.can_review else None,
    }
    return render(request, "labeling/project.html", context)


@login_required
def settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = ProjectSettingsForm(request.POST or None, instance=membership.project)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            before = projects.lock_settings(membership.project)
            projects.overlap_changed(project=form.save(), before=before)
        messages.success(request, "Settings saved.")
        return redirect("labeling:project", slug=slug)
    context = {"membership": membership, "project": membership.project, "form": form}
    return render(
        request, "labeling/project_settings.html", context, status=422 if form.errors else 200
    )


@login_required
def members(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = InviteForm(request.POST or None)
    invitation = None
    if request.method == "POST" and form.is_valid():
        invitation = projects.invite(project=membership.project, **form.cleaned_data)
        form = InviteForm()
    people = membership.project.memberships.select_related("user").order_by("user__username")
    context = {
        "membership": membership,
        "project": membership.project,
        "form": form,
        "people": people,
        "invitation": invitation,
    }
    return render(request, "labeling/members.html", context, status=422 if form.errors else 200)


@login_required
@require_POST
def remove_member(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    target = get_object_or_404(membership.project.memberships, pk=pk)
    if target.pk == membership.pk:
        messages.error(request, "You cannot remove yourself; ask another admin.")
    else:
        projects.remove_member(membership=target)
    return redirect("labeling:members", slug=slug)


@login_required
def import_items(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    project = membership.project
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        job = imports.start_import(
            project=project,
            created_by=request.user,
            uploaded=upload,
            filename=upload.name,
            skip_bad_lines=form.cleaned_data["skip_bad_lines"],
        )
        return redirect("labeling:import-detail", slug=slug, pk=job.pk)
    jobs = project.import_jobs.all()[:20]
    context = {"membership": membership, "project": project, "form": form, "jobs": jobs}
    return render(request, "labeling/import.html", context, status=422 if form.errors else 200)


@login_required
def import_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A job's page; htmx polls the `job` partial every 2 s until the job has finished."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    job = get_object_or_404(membership.project.import_jobs, pk=pk)
    context = {"membership": membership, "project": membership.project, "job": job}
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, "labeling/import_detail.html#job", context)
        return HttpResponseStopPolling(response.content) if job.is_finished else response
    return render(request, "labeling/import_detail.html", context)
