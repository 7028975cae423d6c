"""Quality-control pages: the reviewer's queue, annotators' feedback, the admin's quality page.

The review queue works like the labeling queue: one URL, htmx POSTs answer with the next state
of the work area, and errors that must not lose what the reviewer typed (422, 409) go to the
notice area. Reviewers and admins review; annotators get a 403, outsiders a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from labeling import quality
from labeling.access import membership_for, own_review_task
from labeling.models import Membership, ReviewTask, Role
from labeling.quality_forms import GoldForm, PromoteForm, QualitySettingsForm
from labeling.selectors import heartbeat_interval
from labeling.services import gold, reviews
from labeling.services.annotations import TEXT_LIMIT, InvalidAnnotation

REVIEWERS = [Role.ADMIN, Role.REVIEWER]
ADMIN = [Role.ADMIN]
REVIEW_TEMPLATE = "labeling/review.html"


@login_required
@vary_on_headers("HX-Request")
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=REVIEWERS)
    return render_review(request, membership)


def _own_task(request: HttpRequest, slug: str, pk: int) -> tuple[Membership, ReviewTask]:
    membership = membership_for(request.user, slug, roles=REVIEWERS)
    return membership, own_review_task(membership, pk)


@login_required
@require_POST
def submit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    membership, task = _own_task(request, slug, pk)
    try:
        reviews.submit(task=task, reviewer=request.user, data=review_data(request.POST))
    except InvalidAnnotation as error:
        return notice(request, membership, errors=error.errors, status=422)
    except reviews.ReviewLeaseLost:
        return notice(request, membership, lease_lost=True, status=409)
    return render_review(request, membership)


@login_required
@require_POST
def heartbeat(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    _, task = _own_task(request, slug, pk)
    try:
        reviews.heartbeat(task=task, reviewer=request.user)
    except reviews.ReviewLeaseLost:
        return HttpResponse(status=409)
    return HttpResponse(status=204)


@login_required
@require_POST
def diff(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """The live diffs of the corrected response against each annotator's response."""
    membership, task = _own_task(request, slug, pk)
    corrected = request.POST.get("response", "")
    if len(corrected) > TEXT_LIMIT:
        # The diff is quadratic in the worst case: refuse what submit would refuse anyway.
        reason = f"at most {TEXT_LIMIT:,} characters; this one has {len(corrected):,}"
        return notice(request, membership, errors={"response": reason}, status=422)
    shown = quality.response_diffs(task, corrected)
    return render(request, "labeling/_review_diffs.html", {"shown": shown})


def review_data(post: QueryDict) -> dict[str, Any]:
    """Form fields -> the reviews service's input."""
    data: dict[str, Any] = {key: post.get(key) for key in post if key != "rejected"}
    data["rejected"] = post.getlist("rejected")
    return data


def render_review(request: HttpRequest, membership: Membership, status: int = 200) -> HttpResponse:
    wants_partial = request.htmx and not request.htmx.history_restore_request  # type: ignore[attr-defined]
    if not wants_partial and request.method == "POST":
        return redirect("labeling:review", slug=membership.project.slug)
    template = f"{REVIEW_TEMPLATE}#work" if wants_partial else REVIEW_TEMPLATE
    return render(request, template, review_context(membership), status=status)


def review_context(membership: Membership) -> dict[str, Any]:
    """Triage what has finished since, then claim (or renew) the reviewer's lease."""
    project = membership.project
    task = reviews.next_review(membership=membership)
    context: dict[str, Any] = {"membership": membership, "project": project}
    if task is None:
        return context | {"state": "empty"}
    task.project = project
    return context | {
        "state": "review",
        "card": quality.review_card(task),
        "client_id": uuid.uuid4(),
        "heartbeat_seconds": heartbeat_interval(project),
        "choices": list(quality.CHOICE_LABELS.items()),
    }


def notice(
    request: HttpRequest, membership: Membership, *, status: int, **context: Any
) -> HttpResponse:
    """Explain a failed POST in the notice area and leave the form as it is."""
    if not request.htmx:  # type: ignore[attr-defined]
        page = review_context(membership) | context
        return render(request, REVIEW_TEMPLATE, page, status=status)
    response = render(request, "labeling/_review_notice.html", context, status=status)
    response["HX-Retarget"] = "#notice"
    response["HX-Reswap"] = "innerHTML"
    return response


@login_required
def feedback(request: HttpRequest, slug: str) -> HttpResponse:
    """A member's own reviewed work and missed gold items; nobody else's."""
    membership = membership_for(request.user, slug)
    context = {
        "membership": membership,
        "project": membership.project,
        "feedback": quality.feedback(membership),
    }
    return render(request, "labeling/feedback.html", context)


@login_required
def quality_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The admin's quality page: settings, paused annotators, gold items."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    project = membership.project
    form = QualitySettingsForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Quality settings saved.")
        return redirect("labeling:quality", slug=slug)
    return _quality(request, membership, settings_form=form)


def _quality(request: HttpRequest, membership: Membership, **forms: Any) -> HttpResponse:
    project = membership.project
    context = {
        "membership": membership,
        "project": project,
        "settings_form": forms.get("settings_form") or QualitySettingsForm(instance=project),
        "gold_form": forms.get("gold_form") or GoldForm(project=project),
        "promote_form": PromoteForm(),
        "promote_batch": gold.PROMOTE_BATCH,
        "paused": gold.paused_members(project),
        "gold_labels": project.gold_labels.select_related("item").order_by("-pk")[:200],
    }
    status = 422 if any(form.errors for form in forms.values()) else 200
    return render(request, "labeling/quality.html", context, status=status)


@login_required
@require_POST
def mark_gold(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = GoldForm(request.POST, project=membership.project)
    if form.is_valid():
        try:
            gold.mark_gold(
                item=form.cleaned_data["item"], created_by=request.user, **form.expected()
            )
        except gold.GoldError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
    if form.errors:
        return _quality(request, membership, gold_form=form)
    messages.success(request, "Marked as gold.")
    return redirect("labeling:quality", slug=slug)


@login_required
@require_POST
def promote_gold(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    form = PromoteForm(request.POST)
    if form.is_valid():
        done = gold.promote_unanimous(
            project=membership.project,
            min_votes=form.cleaned_data["min_votes"],
            created_by=request.user,
        )
        messages.success(request, promotion_message(done))
    return redirect("labeling:quality", slug=slug)


def promotion_message(done: gold.Promotion) -> str:
    text = f"{done.promoted} unanimous items promoted to gold; they are no longer exported."
    if done.more:
        text += f" More remain (at most {gold.PROMOTE_BATCH} per run): promote again."
    return text


@login_required
@require_POST
def resume(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    membership = membership_for(request.user, slug, roles=ADMIN)
    target = get_object_or_404(membership.project.memberships.select_related("user"), pk=pk)
    gold.resume(membership=target)
    messages.success(request, f"{target.user.get_username()} can label again.")
    return redirect("labeling:quality", slug=slug)


@login_required
@require_POST
def demote_gold(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Turn a gold item back into a regular item (admins)."""
    membership = membership_for(request.user, slug, roles=ADMIN)
    item = get_object_or_404(membership.project.items, pk=pk)
    if gold.demote(item=item):
        messages.success(request, f"{item} is a regular item again.")
    return redirect("labeling:quality", slug=slug)
