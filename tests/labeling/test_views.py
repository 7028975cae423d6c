"""HTML pages: the permission matrix over every route, and the labeling flow through htmx."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Annotation, Assignment, ImportJob, Membership
from labeling.services import assignments, guidelines
from tests.factories import ItemFactory, pairwise_item

pytestmark = pytest.mark.django_db

ALL = {"annotator", "reviewer", "admin"}
ADMIN = {"admin"}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(sft_project, annotator, reviewer, queue_admin, outsider):
    """Two guideline versions, an import job and a lease held by the annotator."""
    guidelines.publish(project=sft_project, author=queue_admin, body="# v1", changelog="one")
    version = guidelines.publish(
        project=sft_project, author=queue_admin, body="# v2", changelog="two"
    )
    Membership.objects.filter(project=sft_project).update(acknowledged_guideline=version)
    ItemFactory(project=sft_project)
    member = Membership.objects.select_related("project").get(user=annotator, project=sft_project)
    lease = assignments.claim_next(membership=member)
    job = ImportJob.objects.create(project=sft_project, filename="a.jsonl", path="/nonexistent")
    users = {
        "annotator": annotator,
        "reviewer": reviewer,
        "admin": queue_admin,
        "outsider": outsider,
    }
    return {
        "slug": sft_project.slug,
        "lease": lease.pk,
        "job": job.pk,
        "users": users,
        "member": Membership.objects.get(user=reviewer, project=sft_project).pk,
    }


# (url name, method, kwargs from the world, roles allowed, status when allowed)
ROUTES = [
    ("project", "get", {}, ALL, 200),
    ("queue", "get", {}, ALL, 200),
    ("guidelines", "get", {}, ALL, 200),
    ("guideline-version", "get", {"number": 1}, ALL, 200),
    ("guidelines-diff", "get", {}, ALL, 200),
    ("edit-diff", "post", {}, ALL, 200),
    ("acknowledge", "post", {}, ALL, 200),
    ("settings", "get", {}, ADMIN, 200),
    ("members", "get", {}, ADMIN, 200),
    ("member-remove", "post", {"pk": "member"}, ADMIN, 302),
    ("import", "get", {}, ADMIN, 200),
    ("import-detail", "get", {"pk": "job"}, ADMIN, 200),
    ("guidelines-edit", "get", {}, ADMIN, 200),
    ("guidelines-preview", "post", {}, ADMIN, 200),
    # A lease is its holder's alone: everyone else gets a 404, even admins.
    ("submit", "post", {"pk": "lease"}, {"annotator"}, 422),
    ("skip", "post", {"pk": "lease"}, {"annotator"}, 422),
    ("heartbeat", "post", {"pk": "lease"}, {"annotator"}, 204),
]
LEASE_ROUTES = {"submit", "skip", "heartbeat"}


def _url(world, name, kwargs):
    resolved = {k: world[v] if isinstance(v, str) else v for k, v in kwargs.items()}
    url = reverse(f"labeling:{name}", kwargs={"slug": world["slug"], **resolved})
    return url + ("?old=1&new=2" if name == "guidelines-diff" else "")


@pytest.mark.parametrize(("name", "method", "kwargs", "allowed", "ok"), ROUTES)
@pytest.mark.parametrize("actor", ["anonymous", "outsider", "annotator", "reviewer", "admin"])
def test_permission_matrix(client, world, name, method, kwargs, allowed, ok, actor):
    if actor != "anonymous":
        client.force_login(world["users"][actor])
    response = getattr(client, method)(_url(world, name, kwargs), **HTMX)
    if actor == "anonymous":
        expected = 302
    elif actor == "outsider" or (name in LEASE_ROUTES and actor not in allowed):
        expected = 404
    else:
        expected = ok if actor in allowed else 403
    assert response.status_code == expected
    if actor == "anonymous":
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("actor", "status"), [("outsider", 403), ("admin", 200)])
def test_only_staff_create_projects(client, world, actor, status):
    user = world["users"][actor]
    user.is_staff = actor == "admin"
    user.save()
    client.force_login(user)
    assert client.get(reverse("labeling:project-create")).status_code == status


def test_outsider_sees_no_projects_on_home(client, world):
    client.force_login(world["users"]["outsider"])
    response = client.get(reverse("labeling:home"))
    assert response.status_code == 200
    assert b"SFT demo" not in response.content


def _submit(client, project, lease_pk, data, **extra):
    url = reverse("labeling:submit", kwargs={"slug": project.slug, "pk": lease_pk})
    return client.post(url, data, **HTMX, **extra)


def test_htmx_queue_returns_the_work_partial(client, pairwise_project, annotator):
    pairwise_item(pairwise_project, prompt="Which is the capital of France?")
    client.force_login(annotator)
    url = reverse("labeling:queue", kwargs={"slug": pairwise_project.slug})
    partial = client.get(url, **HTMX)
    page = client.get(url)
    assert b"<html" not in partial.content
    assert b"Which is the capital of France?" in partial.content
    assert b"<html" in page.content
    assert b'id="item-card"' in page.content


def test_pairwise_submit_stores_the_choice_and_returns_the_next_item(
    client, pairwise_project, annotator
):
    first = pairwise_item(pairwise_project, prompt="First prompt?")
    pairwise_item(pairwise_project, prompt="Second prompt?")
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": pairwise_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    data = {
        "client_id": str(uuid.uuid4()),
        "choice": "left",
        "strength": "3",
        "criterion-honesty": "right",
        "rationale": "Clearer.",
        "time_spent_ms": "1234",
    }
    response = _submit(client, pairwise_project, lease.pk, data)
    assert response.status_code == 200
    assert b"Second prompt?" in response.content
    annotation = Annotation.objects.get(item=first)
    assert annotation.choice == ("b" if lease.swapped else "a")
    assert annotation.criteria == {"honesty": "a" if lease.swapped else "b"}
    assert (annotation.strength, annotation.time_spent_ms) == (3, 1234)


def test_sft_submit_with_errors_answers_422_in_the_notice_area(client, sft_project, annotator):
    ItemFactory(project=sft_project)
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    response = _submit(
        client,
        sft_project,
        lease.pk,
        {"client_id": str(uuid.uuid4()), "response": "ok", "rating": "7"},
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#notice"
    assert b"7 is outside 1..5" in response.content
    assert Annotation.objects.count() == 0


def test_submit_after_a_lost_lease_answers_409_and_offers_resubmit(client, sft_project, annotator):
    ItemFactory(project=sft_project)
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    data = {"client_id": str(uuid.uuid4()), "response": "Answer.", "rating": "3"}
    lost = _submit(client, sft_project, lease.pk, data)
    assert lost.status_code == 409
    assert b"data-resubmit" in lost.content
    resubmitted = _submit(client, sft_project, lease.pk, data | {"resubmit": "1"})
    assert resubmitted.status_code == 200
    assert Annotation.objects.get().response_text == "Answer."


def _heartbeat(client, project, lease_pk):
    url = reverse("labeling:heartbeat", kwargs={"slug": project.slug, "pk": lease_pk})
    return client.post(url, HTTP_HX_REQUEST="true")


def test_a_heartbeat_that_crosses_the_submit_is_quiet(client, sft_project, annotator):
    ItemFactory(project=sft_project)
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    data = {"client_id": str(uuid.uuid4()), "response": "Answer.", "rating": "3"}
    assert _submit(client, sft_project, lease.pk, data).status_code == 200

    late = _heartbeat(client, sft_project, lease.pk)

    assert (late.status_code, late.content) == (204, b"")


def test_a_heartbeat_on_a_lapsed_lease_answers_409(client, sft_project, annotator):
    ItemFactory(project=sft_project)
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))

    lost = _heartbeat(client, sft_project, lease.pk)

    assert lost.status_code == 409
    assert lost["HX-Retarget"] == "#notice"


def test_skip_records_the_reason_and_shows_the_next_item(client, sft_project, annotator):
    ItemFactory(project=sft_project, prompt="Skip me?")
    ItemFactory(project=sft_project, prompt="Then me?")
    client.force_login(annotator)
    client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    lease = Assignment.objects.get(annotator=annotator)
    url = reverse("labeling:skip", kwargs={"slug": sft_project.slug, "pk": lease.pk})
    response = client.post(url, {"reason": "unclear"}, **HTMX)
    assert b"Then me?" in response.content
    assert Assignment.objects.get(pk=lease.pk).skip_reason == "unclear"


def test_new_guidelines_must_be_acknowledged_with_the_diff_shown(
    client, sft_project, annotator, queue_admin
):
    ItemFactory(project=sft_project, prompt="After reading?")
    guidelines.publish(
        project=sft_project, author=queue_admin, body="Rule: be kind.", changelog="kindness"
    )
    client.force_login(annotator)
    url = reverse("labeling:queue", kwargs={"slug": sft_project.slug})
    gate = client.get(url, **HTMX)
    assert b"Guidelines updated to v1" in gate.content
    assert b"+ Rule: be kind." in gate.content
    assert Assignment.objects.count() == 0
    ack = reverse("labeling:acknowledge", kwargs={"slug": sft_project.slug})
    response = client.post(ack, {"version": "1"}, **HTMX)
    assert b"After reading?" in response.content


def test_admin_publishes_guidelines_from_the_editor(client, sft_project, queue_admin):
    client.force_login(queue_admin)
    url = reverse("labeling:guidelines-edit", kwargs={"slug": sft_project.slug})
    response = client.post(url, {"body": "# Be precise", "changelog": "Precision"})
    assert response.status_code == 302
    sft_project.refresh_from_db()
    assert (sft_project.current_guideline.number, sft_project.current_guideline.body) == (
        1,
        "# Be precise",
    )


def test_guideline_preview_is_sanitized(client, sft_project, queue_admin):
    client.force_login(queue_admin)
    url = reverse("labeling:guidelines-preview", kwargs={"slug": sft_project.slug})
    response = client.post(
        url, {"body": "**ok** <script>alert(1)</script> [x](javascript:alert(1))"}
    )
    assert response.content.decode() == (
        "<p><strong>ok</strong> &lt;script&gt;alert(1)&lt;/script&gt; "
        "[x](javascript:alert(1))</p>\n"
    )


def test_invite_creates_a_passwordless_user_with_a_one_time_link(client, sft_project, queue_admin):
    client.force_login(queue_admin)
    url = reverse("labeling:members", kwargs={"slug": sft_project.slug})
    response = client.post(
        url, {"username": "newbie", "email": "n@example.org", "role": "reviewer"}
    )
    assert response.status_code == 200
    member = Membership.objects.select_related("user").get(user__username="newbie")
    assert member.role == "reviewer"
    assert member.user.has_usable_password() is False
    assert b"/set-password/" in response.content


def test_every_page_has_a_strict_csp_with_a_nonce(client, sft_project, annotator):
    client.force_login(annotator)
    response = client.get(reverse("labeling:queue", kwargs={"slug": sft_project.slug}))
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self' 'nonce-" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
