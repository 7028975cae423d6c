"""The labeling pages: one URL for the queue; POSTs answer with the next state of the work area.

htmx requests get the `work` partial (one round trip: a submit answers with the next item);
plain requests get the whole page. Errors that must not lose what the annotator typed (422, 409)
are retargeted to the notice area, leaving the form untouched.
"""

import uuid
from collections.abc import Callable
from contextlib import suppress
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from labeling.access import membership_for, own_assignment
from labeling.diffing import line_diff
from labeling.forms import SkipForm
from labeling.models import Assignment, Membership
from labeling.selectors import annotator_progress, heartbeat_interval
from labeling.services import annotations, assignments, guidelines
from labeling.services.annotations import STRENGTHS

QUEUE_TEMPLATE = "labeling/queue.html"


@login_required
@vary_on_headers("HX-Request")
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    return render_work(request, membership)


LeaseView = Callable[[HttpRequest, Membership, Assignment], HttpResponse]


def lease_post(view: LeaseView) -> Callable[..., HttpResponse]:
    """A POST on one of the caller's own leases (anyone else's is a 404).

    A lease that lapsed answers 409 with the notice that offers to resubmit.
    """

    @login_required
    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
        membership = membership_for(request.user, slug)
        assignment = own_assignment(request.user, membership, pk)
        try:
            return view(request, membership, assignment)
        except assignments.LeaseLost as error:
            return notice(
                request, membership, lease_lost=True, item_open=error.item_open, status=409
            )

    return wrapper


@lease_post
def submit(request: HttpRequest, membership: Membership, assignment: Assignment) -> HttpResponse:
    try:
        annotations.submit(
            assignment=assignment,
            user=request.user,
            data=submission_data(request.POST, membership),
            resubmit=request.POST.get("resubmit") == "1",
        )
    except annotations.InvalidAnnotation as error:
        return notice(request, membership, errors=error.errors, status=422)
    except annotations.AlreadySubmitted:
        return notice(request, membership, already_submitted=True, status=409)
    return render_work(request, membership)


@lease_post
def skip(request: HttpRequest, membership: Membership, assignment: Assignment) -> HttpResponse:
    form = SkipForm(request.POST)
    if not form.is_valid():
        return notice(request, membership, errors={"reason": "pick a reason"}, status=422)
    # A lapsed lease is gone either way: show the next item.
    with suppress(assignments.LeaseLost):
        assignments.skip(
            assignment=assignment, user=request.user, reason=form.cleaned_data["reason"]
        )
    return render_work(request, membership)


@lease_post
def heartbeat(request: HttpRequest, membership: Membership, assignment: Assignment) -> HttpResponse:
    try:
        assignments.heartbeat(assignment=assignment, user=request.user)
    except assignments.LeaseLost:
        # A heartbeat sent just before the submit (or skip) arrives after it: the annotator
        # closed the lease, nothing was lost, so no "lease lapsed" notice.
        closed = (Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED)
        if not Assignment.objects.filter(pk=assignment.pk, status__in=closed).exists():
            raise
    return HttpResponse(status=204)


@login_required
@require_POST
def acknowledge(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    version = membership.project.current_guideline
    if version is not None and str(version.number) == request.POST.get("version"):
        guidelines.acknowledge(membership=membership, version=version)
    # A stale version number falls through: the page shows the newer version to acknowledge.
    return render_work(request, membership)


@login_required
@require_POST
def edit_diff(request: HttpRequest, slug: str) -> HttpResponse:
    """The SFT editor's live diff of the response against the imported draft."""
    membership_for(request.user, slug)
    lines = line_diff(request.POST.get("draft", ""), request.POST.get("response", ""))
    return render(request, "labeling/_diff.html", {"lines": lines, "empty_label": "No edits yet."})


def render_work(request: HttpRequest, membership: Membership, status: int = 200) -> HttpResponse:
    context = work_context(membership)
    wants_partial = request.htmx and not request.htmx.history_restore_request  # type: ignore[attr-defined]
    if not wants_partial and request.method == "POST":
        return redirect("labeling:queue", slug=membership.project.slug)
    template = f"{QUEUE_TEMPLATE}#work" if wants_partial else QUEUE_TEMPLATE
    return render(request, template, context, status=status)


def work_context(membership: Membership) -> dict[str, Any]:
    """Claim (or renew) the annotator's lease and describe what the work area shows."""
    context: dict[str, Any] = {"membership": membership, "project": membership.project}
    try:
        assignment = assignments.claim_next(membership=membership)
    except assignments.GuidelinesNotAcknowledged:
        diff = guidelines.changes_since_acknowledged(membership)
        return context | {"state": "acknowledge", "diff": diff}
    except assignments.AnnotatorPaused as paused:
        return context | {"state": "paused", "paused_message": str(paused)}
    context["progress"] = annotator_progress(membership)
    if assignment is None:
        return context | {"state": "empty"}
    return context | {"state": "label"} | card_context(assignment)


def card_context(assignment: Assignment) -> dict[str, Any]:
    project = assignment.project
    responses = list(assignment.item.responses.all())
    if assignment.swapped:
        responses.reverse()
    return {
        "assignment": assignment,
        "item": assignment.item,
        "shown": list(zip(("left", "right"), responses, strict=False)),
        "client_id": uuid.uuid4(),
        "ratings": range(1, project.rating_scale + 1),
        "strengths": STRENGTHS.items(),
        "skip_form": SkipForm(),
        "heartbeat_seconds": heartbeat_interval(project),
    }


def submission_data(post: QueryDict, membership: Membership) -> dict[str, Any]:
    """Form fields -> the annotations service's input (the API sends the same shape as JSON)."""
    data: dict[str, Any] = {key: post.get(key) for key in post if key not in ("flags",)}
    data["flags"] = post.getlist("flags")
    criteria = membership.project.criteria
    data["criteria"] = {
        name: post[f"criterion-{name}"] for name in criteria if post.get(f"criterion-{name}")
    }
    return data


def notice(
    request: HttpRequest, membership: Membership, *, status: int, **context: Any
) -> HttpResponse:
    """Explain a failed POST in the notice area and leave the form as it is."""
    if not request.htmx:  # type: ignore[attr-defined]
        return render(request, QUEUE_TEMPLATE, work_context(membership) | context, status=status)
    response = render(request, "labeling/_notice.html", context, status=status)
    response["HX-Retarget"] = "#notice"
    response["HX-Reswap"] = "innerHTML"
    return response
