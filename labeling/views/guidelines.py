"""Guideline pages: read, history, diff between versions, and the admin's editor."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling.access import membership_for
from labeling.forms import GuidelineForm
from labeling.models import GuidelineVersion, Project, Role
from labeling.rendering import render_markdown
from labeling.services import guidelines

ADMIN = [Role.ADMIN]


def _version(project: Project, number: str | int | None) -> GuidelineVersion:
    try:
        return project.guidelines.get(number=int(number or 0))
    except (GuidelineVersion.DoesNotExist, ValueError):
        raise Http404("No such guideline version.") from None


@login_required
def detail(request: HttpRequest, slug: str, number: int | None = None) -> HttpResponse:
    membership = membership_for(request.user, slug)
    project = membership.project
    version = _version(project, number) if number else project.current_guideline
    history = project.guidelines.select_related("author").only(
        "number", "changelog", "created_at", "author__username"
    )
    return render(
        request,
        "labeling/guidelines.html",
        {"membership": membership, "project": project, "version": version, "history": history},
    )


@login_required
def compare(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    project = membership.project
    old, new = _version(project, request.GET.get("old")), _version(project, request.GET.get("new"))
    return render(
        request,
        "labeling/guidelines_diff.html",
        {
            "project": project,
            "membership": membership,
            "old": old,
            "new": new,
            "lines": guidelines.compare(old=old, new=new),
        },
    )


@login_required
def edit(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    project = membership.project
    current = project.current_guideline
    form = GuidelineForm(request.POST or None, initial={"body": current.body if current else ""})
    if request.method == "POST" and form.is_valid():
        guidelines.publish(project=project, author=request.user, **form.cleaned_data)
        return redirect("labeling:guidelines", slug=slug)
    status = 422 if form.errors else 200
    context = {"membership": membership, "project": project, "form": form, "current": current}
    return render(request, "labeling/guidelines_edit.html", context, status=status)


@login_required
@require_POST
def preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The editor's live preview: the same sanitizer annotators' pages use."""
    membership_for(request.user, slug, roles=ADMIN)
    return HttpResponse(render_markdown(request.POST.get("body", "")))
