"""The REST API: who may call what, the queue's round trips, and the OpenAPI schema."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import (
    Annotation,
    Assignment,
    GuidelineVersion,
    ImportJob,
    Item,
    Membership,
    Project,
)
from labeling.services import assignments, guidelines
from tests.factories import ItemFactory, pairwise_item

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # tests/factories.py UserFactory


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    """Uploads (the permission matrix imports a file too) land in the test's own folder."""
    settings.UPLOAD_DIR = tmp_path


def login(api: APIClient, user) -> APIClient:
    api.force_login(user)
    return api


def membership(user, project: Project) -> Membership:
    return Membership.objects.select_related("project").get(user=user, project=project)


def claim(api: APIClient, project: Project):
    return api.post(reverse("api:claim", kwargs={"slug": project.slug}))


def submit(api: APIClient, lease_id: int, data: dict[str, Any], query: str = ""):
    return api.post(reverse("api:submit", kwargs={"pk": lease_id}) + query, data, format="json")


def sft_answer(**fields: Any) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "response": "Final answer.", "rating": 4, **fields}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def lapse_all_leases() -> None:
    assignments.release_expired_leases(now=timezone.now() + timedelta(days=1))


# --- who may call what ------------------------------------------------------------------------


@dataclass
class World:
    """One SFT project with a member of each role, a guideline, items, a job and a lease."""

    project: Project
    version: GuidelineVersion
    item: Item
    job: ImportJob
    lease: Assignment  # the annotator's


@pytest.fixture
def world(sft_project, annotator, reviewer, queue_admin, outsider) -> World:
    version = guidelines.publish(
        project=sft_project, author=queue_admin, body="# Rules", changelog="First"
    )
    Membership.objects.filter(project=sft_project).update(acknowledged_guideline=version)
    leased, item = ItemFactory(project=sft_project), ItemFactory(project=sft_project)
    lease = Assignment.objects.create(
        project=sft_project,
        item=leased,
        annotator=annotator,
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    Item.objects.filter(pk=leased.pk).update(open_slots=0)
    job = ImportJob.objects.create(project=sft_project, filename="items.jsonl", path="/dev/null")
    return World(sft_project, version, item, job, lease)


ACTORS = ("anonymous", "outsider", "annotator", "reviewer", "admin")
ACTOR_FIXTURES = {
    "outsider": "outsider",
    "annotator": "annotator",
    "reviewer": "reviewer",
    "admin": "queue_admin",
}


def upload() -> dict[str, Any]:
    return {"file": SimpleUploadedFile("more.jsonl", b'{"id": "n-1", "prompt": "Hello?"}\n')}


# endpoint: (method, url name, url kwargs from the world, body, format, expected per ACTORS)
MATRIX: dict[str, tuple[str, str, Any, Any, str, tuple[int, ...]]] = {
    "project-list": ("get", "project-list", lambda w: {}, None, "json", (401, 200, 200, 200, 200)),
    "project-detail": (
        "get", "project-detail", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 200, 200, 200),
    ),
    "guideline-list": (
        "get", "guideline-list", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 200, 200, 200),
    ),
    "guideline-publish": (
        "post", "guideline-list", lambda w: {"slug": w.project.slug},
        {"body": "# Rules v2", "changelog": "Clearer"}, "json", (401, 404, 403, 403, 201),
    ),
    "guideline-current": (
        "get", "guideline-current", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 200, 200, 200),
    ),
    "guideline-acknowledge": (
        "post", "guideline-acknowledge", lambda w: {"slug": w.project.slug, "number": 1},
        None, "json", (401, 404, 200, 200, 200),
    ),
    "item-list": (
        "get", "item-list", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 403, 200, 200),
    ),
    "item-detail": (
        "get", "item-detail", lambda w: {"slug": w.project.slug, "pk": w.item.pk}, None, "json",
        (401, 404, 403, 200, 200),
    ),
    "import-create": (
        "post", "import-create", lambda w: {"slug": w.project.slug}, upload, "multipart",
        (401, 404, 403, 403, 202),
    ),
    "import-detail": (
        "get", "import-detail", lambda w: {"slug": w.project.slug, "pk": w.job.pk}, None,
        "json", (401, 404, 403, 403, 200),
    ),
    "claim": (
        "post", "claim", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 200, 200, 200),
    ),
    "annotation-list": (
        "get", "annotation-list", lambda w: {"slug": w.project.slug}, None, "json",
        (401, 404, 200, 200, 200),
    ),
    # A lease is its annotator's alone: everyone else gets a 404, members included.
    "heartbeat": (
        "post", "heartbeat", lambda w: {"pk": w.lease.pk}, None, "json",
        (401, 404, 200, 404, 404),
    ),
    "submit": (
        "post", "submit", lambda w: {"pk": w.lease.pk}, sft_answer, "json",
        (401, 404, 201, 404, 404),
    ),
    "skip": (
        "post", "skip", lambda w: {"pk": w.lease.pk}, {"reason": "unclear"}, "json",
        (401, 404, 200, 404, 404),
    ),
    "schema": ("get", "schema", lambda w: {}, None, "json", (200, 200, 200, 200, 200)),
    "docs": ("get", "docs", lambda w: {}, None, "json", (200, 200, 200, 200, 200)),
}  # fmt: skip


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", MATRIX)
def test_permission_matrix(endpoint, actor, world, api, request):
    # given
    method, name, url_kwargs, body, fmt, expected = MATRIX[endpoint]
    if actor != "anonymous":
        login(api, request.getfixturevalue(ACTOR_FIXTURES[actor]))
    url = reverse(f"api:{name}", kwargs=url_kwargs(world))
    # when
    response = getattr(api, method)(url, body() if callable(body) else body, format=fmt)
    # then
    assert response.status_code == expected[ACTORS.index(actor)]


def test_a_refused_write_changes_nothing(world, reviewer, api):
    login(api, reviewer)
    response = api.post(
        reverse("api:guideline-list", kwargs={"slug": world.project.slug}),
        {"body": "# Mine now", "changelog": "Takeover"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Your role in this project does not allow this."}
    assert GuidelineVersion.objects.filter(project=world.project).count() == 1
    assert Project.objects.get(pk=world.project.pk).current_guideline_id == world.version.pk


def test_a_former_member_cannot_touch_their_old_lease(world, annotator, api):
    Membership.objects.filter(user=annotator, project=world.project).delete()
    response = submit(login(api, annotator), world.lease.pk, sft_answer())
    assert response.status_code == 404
    assert Assignment.objects.get(pk=world.lease.pk).status == Assignment.Status.ACTIVE


# --- projects, guidelines, items, imports ----------------------------------------------------


def test_projects_list_shows_each_project_once_with_the_callers_role(
    sft_project, pairwise_project, annotator, reviewer, queue_admin, api
):
    version = guidelines.publish(
        project=sft_project, author=queue_admin, body="# Rules", changelog="First"
    )
    response = login(api, reviewer).get(reverse("api:project-list"))
    assert response.status_code == 200
    rows = {row["slug"]: row for row in response.json()["results"]}
    assert response.json()["count"] == 2
    assert rows["sft-demo"]["role"] == "reviewer"
    assert rows["sft-demo"]["current_guideline"] == version.number
    assert rows["sft-demo"]["acknowledged_guideline"] is None
    assert rows["pair-demo"] | {"created_at": None} == {
        "slug": "pair-demo", "name": "Pairwise demo", "kind": "pairwise", "description": "",
        "overlap": 2, "lease_seconds": 600, "rating_scale": 5,
        "flags": ["unsafe", "factual_error", "pii"],
        "criteria": ["helpfulness", "harmlessness", "honesty"], "randomize_order": True,
        "current_guideline": None, "acknowledged_guideline": None, "role": "reviewer",
        "created_at": None,
    }  # fmt: skip


def test_an_outsider_sees_no_projects(sft_project, pairwise_project, outsider, api):
    response = login(api, outsider).get(reverse("api:project-list"))
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_admin_publishes_a_guideline_version(sft_project, queue_admin, api):
    response = login(api, queue_admin).post(
        reverse("api:guideline-list", kwargs={"slug": sft_project.slug}),
        {"body": "# Rules\n\nCite sources.", "changelog": "Sources"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["author"], body["changelog"]) == (1, "ada", "Sources")
    assert body["body"] == "# Rules\n\nCite sources."
    project = Project.objects.select_related("current_guideline").get(pk=sft_project.pk)
    assert project.current_guideline.number == 1
    assert project.current_guideline.body == "# Rules\n\nCite sources."


def test_publishing_needs_a_body_and_a_changelog(sft_project, queue_admin, api):
    response = login(api, queue_admin).post(
        reverse("api:guideline-list", kwargs={"slug": sft_project.slug}), {}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "body": ["This field is required."],
        "changelog": ["This field is required."],
    }
    assert GuidelineVersion.objects.count() == 0


def test_current_guideline_is_404_before_any_is_published(sft_project, annotator, api):
    response = login(api, annotator).get(
        reverse("api:guideline-current", kwargs={"slug": sft_project.slug})
    )
    assert response.status_code == 404


def test_guideline_gate_then_acknowledge_then_claim(sft_project, annotator, queue_admin, api):
    # given a version the annotator has not read
    item = ItemFactory(project=sft_project)
    guidelines.publish(project=sft_project, author=queue_admin, body="# Be kind", changelog="v1")
    login(api, annotator)
    # when they claim, they are sent to read it
    gated = claim(api, sft_project)
    assert gated.status_code == 409
    assert gated.json()["detail"] == "Acknowledge the new guidelines first."
    assert gated.json()["guideline"] | {"created_at": None} == {
        "number": 1, "changelog": "v1", "author": "ada", "created_at": None, "body": "# Be kind"
    }  # fmt: skip
    assert Assignment.objects.count() == 0
    # when they acknowledge it, the queue opens
    url = reverse("api:guideline-acknowledge", kwargs={"slug": sft_project.slug, "number": 1})
    assert api.post(url).json() == {"acknowledged_guideline": 1}
    assert membership(annotator, sft_project).acknowledged_guideline.number == 1
    opened = claim(api, sft_project)
    assert opened.status_code == 200
    assert opened.json()["item"]["id"] == item.pk


def test_acknowledging_a_superseded_version_answers_409(sft_project, annotator, queue_admin, api):
    guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    guidelines.publish(project=sft_project, author=queue_admin, body="v2", changelog="v2")
    url = reverse("api:guideline-acknowledge", kwargs={"slug": sft_project.slug, "number": 1})
    response = login(api, annotator).post(url)
    assert response.status_code == 409
    assert response.json() == {"detail": "A newer version was published; read that one first."}
    assert membership(annotator, sft_project).acknowledged_guideline_id is None


def test_acknowledging_an_unknown_version_is_404(sft_project, annotator, api):
    url = reverse("api:guideline-acknowledge", kwargs={"slug": sft_project.slug, "number": 7})
    assert login(api, annotator).post(url).status_code == 404


def test_items_filter_by_status_prompt_and_external_id(sft_project, reviewer, api):
    a = ItemFactory(project=sft_project, prompt="Explain LoRA.", external_id="q-1")
    b = ItemFactory(project=sft_project, prompt="Explain lora ranks.", external_id="q-2")
    ItemFactory(project=sft_project, prompt="Explain LoRA again.", status=Item.Status.DUPLICATE)
    ItemFactory(project=sft_project, prompt="Something else.")
    url = reverse("api:item-list", kwargs={"slug": sft_project.slug})
    login(api, reviewer)

    def ids(**params: str) -> list[int]:
        return [row["id"] for row in api.get(url, params).json()["results"]]

    assert ids(q="lora", status="active") == [a.pk, b.pk]
    assert ids(external_id="q-2") == [b.pk]
    assert ids(q="lora", limit="1", offset="1") == [b.pk]
    assert api.get(url, {"q": "lora"}).json()["count"] == 3


def test_items_reject_an_unknown_status(sft_project, reviewer, api):
    url = reverse("api:item-list", kwargs={"slug": sft_project.slug})
    response = login(api, reviewer).get(url, {"status": "archived"})
    assert response.status_code == 400
    assert response.json() == {"status": ['"archived" is not a valid choice.']}


def test_item_detail_shows_stored_responses_to_reviewers(pairwise_project, reviewer, api):
    item = pairwise_item(pairwise_project, external_id="p-3")
    url = reverse("api:item-detail", kwargs={"slug": pairwise_project.slug, "pk": item.pk})
    body = login(api, reviewer).get(url).json()
    assert body["external_id"] == "p-3"
    assert body["responses"] == [
        {"position": 0, "model": "model-a", "text": f"A answer to {item.prompt}"},
        {"position": 1, "model": "model-b", "text": f"B answer to {item.prompt}"},
    ]


def test_an_item_of_another_project_is_404(sft_project, pairwise_project, reviewer, api):
    item = ItemFactory(project=pairwise_project)
    url = reverse("api:item-detail", kwargs={"slug": sft_project.slug, "pk": item.pk})
    assert login(api, reviewer).get(url).status_code == 404


def test_import_upload_stores_the_file_and_queues_a_job(
    sft_project, queue_admin, api, django_capture_on_commit_callbacks
):
    url = reverse("api:import-create", kwargs={"slug": sft_project.slug})
    with django_capture_on_commit_callbacks() as queued:
        response = login(api, queue_admin).post(
            url, {**upload(), "skip_bad_lines": "true"}, format="multipart"
        )
    assert response.status_code == 202
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert (job.project_id, job.created_by_id) == (sft_project.pk, queue_admin.pk)
    assert (job.filename, job.skip_bad_lines, job.status) == ("more.jsonl", True, "queued")
    assert Path(job.path).read_bytes() == b'{"id": "n-1", "prompt": "Hello?"}\n'
    assert len(queued) == 1
    assert response.json()["status"] == "queued"


def test_import_upload_needs_a_file(sft_project, queue_admin, api):
    url = reverse("api:import-create", kwargs={"slug": sft_project.slug})
    response = login(api, queue_admin).post(url, {}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"file": ["No file was submitted."]}
    assert ImportJob.objects.count() == 0


def test_import_status_reports_progress(sft_project, queue_admin, api):
    job = ImportJob.objects.create(
        project=sft_project, filename="a.jsonl", path="/dev/null", status="running",
        total_lines=200, processed_lines=50, created_items=40, duplicate_items=9,
        errors=[{"line": 7, "reason": "not JSON"}],
    )  # fmt: skip
    url = reverse("api:import-detail", kwargs={"slug": sft_project.slug, "pk": job.pk})
    body = login(api, queue_admin).get(url).json()
    assert {key: body[key] for key in ("status", "percent", "total_lines", "errors")} == {
        "status": "running", "percent": 25, "total_lines": 200,
        "errors": [{"line": 7, "reason": "not JSON"}],
    }  # fmt: skip
    assert (body["processed_lines"], body["created_items"], body["duplicate_items"]) == (50, 40, 9)


# --- the queue -------------------------------------------------------------------------------


def test_claim_leases_an_sft_item_with_its_draft(sft_project, annotator, api):
    item = ItemFactory(project=sft_project, external_id="q-17", draft_response="Draft.")
    response = claim(login(api, annotator), sft_project)
    assert response.status_code == 200
    lease = Assignment.objects.get(annotator=annotator)
    assert response.json() | {"expires_at": None} == {
        "id": lease.pk, "expires_at": None,
        "item": {
            "id": item.pk, "external_id": "q-17", "draft_response": "Draft.", "responses": [],
            "messages": [{"role": "user", "content": item.prompt}],
        },
    }  # fmt: skip
    assert when(response.json()["expires_at"]) == lease.expires_at
    assert lease.status == Assignment.Status.ACTIVE
    assert Item.objects.get(pk=item.pk).open_slots == 0


def test_claim_shows_pairwise_responses_in_the_leases_order_and_blind(
    pairwise_project, annotator, api, monkeypatch
):
    monkeypatch.setattr(assignments, "_coin", lambda: True)  # response B goes on the left
    item = pairwise_item(pairwise_project)
    response = claim(login(api, annotator), pairwise_project)
    assert Assignment.objects.get(annotator=annotator).swapped is True
    assert response.json()["item"]["responses"] == [
        {"side": "left", "text": f"B answer to {item.prompt}"},
        {"side": "right", "text": f"A answer to {item.prompt}"},
    ]
    assert b"model-a" not in response.content
    assert b"model-b" not in response.content


def test_claim_again_answers_the_same_lease(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    ItemFactory(project=sft_project)
    login(api, annotator)
    first, second = claim(api, sft_project).json(), claim(api, sft_project).json()
    assert second["id"] == first["id"]
    assert Assignment.objects.count() == 1


def test_claim_answers_204_when_the_queue_is_empty(sft_project, annotator, api):
    response = claim(login(api, annotator), sft_project)
    assert response.status_code == 204
    assert response.content == b""


def test_heartbeat_pushes_the_expiry(sft_project, annotator, api, time_machine):
    time_machine.move_to(datetime(2030, 1, 1, 12, 0, tzinfo=UTC), tick=False)
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    time_machine.move_to(datetime(2030, 1, 1, 12, 5, tzinfo=UTC), tick=False)
    response = api.post(reverse("api:heartbeat", kwargs={"pk": lease_id}))
    assert response.status_code == 200
    expected = datetime(2030, 1, 1, 12, 15, tzinfo=UTC)  # 12:05 + 600 s
    assert when(response.json()["expires_at"]) == expected
    assert Assignment.objects.get(pk=lease_id).expires_at == expected


def test_heartbeat_on_a_lapsed_lease_answers_409(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    lapse_all_leases()
    response = api.post(reverse("api:heartbeat", kwargs={"pk": lease_id}))
    assert response.status_code == 409
    assert response.json() == {"detail": "This item's lease has lapsed.", "item_open": True}


def test_submit_stores_left_as_b_on_a_swapped_lease(pairwise_project, annotator, api, monkeypatch):
    # given a lease that shows response B on the left
    monkeypatch.setattr(assignments, "_coin", lambda: True)
    item = pairwise_item(pairwise_project)
    lease_id = claim(login(api, annotator), pairwise_project).json()["id"]
    answer = {
        "client_id": str(uuid.uuid4()), "choice": "left", "strength": 2, "rationale": "Shorter.",
        "criteria": {"helpfulness": "left", "honesty": "tie"}, "time_spent_ms": 4200,
    }  # fmt: skip
    # when the annotator prefers the left one
    response = submit(api, lease_id, answer)
    # then B is stored as the winner, in stored terms only
    assert response.status_code == 201
    stored = Annotation.objects.get()
    assert (stored.choice, stored.strength, stored.rationale) == ("b", 2, "Shorter.")
    assert stored.criteria == {"helpfulness": "b", "honesty": "tie"}
    assert (stored.item_id, stored.time_spent_ms, str(stored.client_id)) == (
        item.pk, 4200, answer["client_id"]
    )  # fmt: skip
    assert Assignment.objects.get(pk=lease_id).status == Assignment.Status.SUBMITTED
    assert response.json()["annotation"]["choice"] == "b"
    assert response.json()["next"] is None


def test_submit_answers_the_annotation_and_the_next_lease(sft_project, annotator, queue_admin, api):
    version = guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    guidelines.acknowledge(membership=membership(annotator, sft_project), version=version)
    first, second = ItemFactory(project=sft_project), ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    answer = sft_answer(draft="Draft.", rating=5, flags=["pii"], notes="Has a phone number.")
    response = submit(api, lease_id, answer)
    assert response.status_code == 201
    stored = Annotation.objects.get()
    assert response.json()["annotation"] | {"created_at": None} == {
        "id": stored.pk, "item": first.pk, "annotator": "alice", "client_id": answer["client_id"],
        "guideline": 1, "choice": "", "strength": None, "rationale": "", "criteria": {},
        "response_text": "Final answer.", "rating": 5, "flags": ["pii"],
        "notes": "Has a phone number.", "time_spent_ms": 0, "created_at": None,
    }  # fmt: skip
    assert (stored.response_text, stored.draft_text, stored.guideline_id) == (
        "Final answer.", "Draft.", version.pk
    )  # fmt: skip
    following = response.json()["next"]
    assert following["item"]["id"] == second.pk
    assert Assignment.objects.get(pk=following["id"]).item_id == second.pk


def test_submitting_the_same_client_id_twice_stores_one_annotation(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    answer = sft_answer()
    first, repeat = submit(api, lease_id, answer), submit(api, lease_id, answer)
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["annotation"]["id"] == first.json()["annotation"]["id"]
    assert Annotation.objects.count() == 1


def test_a_second_submit_with_another_client_id_answers_409(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    submit(api, lease_id, sft_answer())
    response = submit(api, lease_id, sft_answer(response="Changed my mind."))
    assert response.status_code == 409
    assert response.json() == {"detail": "This item was already submitted."}
    assert Annotation.objects.get().response_text == "Final answer."


def test_submit_on_a_lapsed_lease_answers_409(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    lapse_all_leases()
    response = submit(api, lease_id, sft_answer())
    assert response.status_code == 409
    assert response.json() == {"detail": "This item's lease has lapsed.", "item_open": True}
    assert Annotation.objects.count() == 0


@pytest.mark.parametrize(
    ("query", "flag"), [("?resubmit=1", {}), ("", {"resubmit": True})], ids=["query", "body"]
)
def test_resubmit_takes_a_lapsed_lease_back_while_the_item_is_open(
    sft_project, annotator, api, query, flag
):
    item = ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    lapse_all_leases()
    response = submit(api, lease_id, sft_answer(**flag), query)
    assert response.status_code == 201
    assert Annotation.objects.get().assignment_id == lease_id
    assert Assignment.objects.get(pk=lease_id).status == Assignment.Status.SUBMITTED
    assert Item.objects.get(pk=item.pk).open_slots == 0


def test_resubmit_after_someone_else_took_the_slot_answers_409(
    sft_project, annotator, other_annotator, api
):
    ItemFactory(project=sft_project)  # overlap 1
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    lapse_all_leases()
    assignments.claim_next(membership=membership(other_annotator, sft_project))
    response = submit(api, lease_id, sft_answer(), "?resubmit=1")
    assert response.status_code == 409
    assert response.json() == {"detail": "This item's lease has lapsed.", "item_open": False}
    assert Annotation.objects.count() == 0


def test_submit_answers_400_with_the_reason_for_each_field(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    answer = {"client_id": "nope", "response": "  ", "rating": 9, "flags": ["rude"]}
    response = submit(api, lease_id, answer)
    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "client_id": "expected a UUID generated by the client for this submit",
            "response": "write a response (it may not be empty)",
            "rating": "9 is outside 1..5",
            "flags": "unknown flags: rude",
        }
    }
    assert Assignment.objects.get(pk=lease_id).status == Assignment.Status.ACTIVE
    assert Annotation.objects.count() == 0


def test_submit_needs_a_json_object(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    response = api.post(reverse("api:submit", kwargs={"pk": lease_id}), [1, 2], format="json")
    assert response.status_code == 400
    assert response.json() == {"errors": {"body": "expected a JSON object"}}


def test_skip_needs_a_reason(sft_project, annotator, api):
    ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    response = api.post(reverse("api:skip", kwargs={"pk": lease_id}), {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"reason": ["This field is required."]}
    assert Assignment.objects.get(pk=lease_id).status == Assignment.Status.ACTIVE


def test_skip_gives_the_item_back_and_leases_the_next(sft_project, annotator, api):
    first, second = ItemFactory(project=sft_project), ItemFactory(project=sft_project)
    lease_id = claim(login(api, annotator), sft_project).json()["id"]
    url = reverse("api:skip", kwargs={"pk": lease_id})
    response = api.post(url, {"reason": "unclear"}, format="json")
    assert response.status_code == 200
    assert response.json()["next"]["item"]["id"] == second.pk
    skipped = Assignment.objects.get(pk=lease_id)
    assert (skipped.status, skipped.skip_reason) == (Assignment.Status.SKIPPED, "unclear")
    assert Item.objects.get(pk=first.pk).open_slots == 1


def test_annotators_see_only_their_own_annotations(
    sft_project, annotator, other_annotator, reviewer, api
):
    # one item each: a submit leases the next open item to its sender
    for user in (annotator, other_annotator):
        ItemFactory(project=sft_project)
        client = login(APIClient(), user)
        lease_id = claim(client, sft_project).json()["id"]
        assert submit(client, lease_id, sft_answer()).json()["next"] is None
    mine, theirs = Annotation.objects.order_by("pk")
    url = reverse("api:annotation-list", kwargs={"slug": sft_project.slug})
    own = login(api, annotator).get(url).json()
    assert [(row["id"], row["annotator"]) for row in own["results"]] == [(mine.pk, "alice")]
    every = login(APIClient(), reviewer).get(url).json()
    assert [(row["id"], row["annotator"]) for row in every["results"]] == [
        (mine.pk, "alice"), (theirs.pk, "bob")
    ]  # fmt: skip


# --- the hot path's query counts (session auth: 2 of each are the session and the user) ------


def test_claim_query_count(pairwise_project, annotator, api, django_assert_max_num_queries):
    pairwise_item(pairwise_project)
    login(api, annotator)
    with django_assert_max_num_queries(CLAIM_QUERIES):
        assert claim(api, pairwise_project).status_code == 200


def test_submit_query_count(pairwise_project, annotator, api, django_assert_max_num_queries):
    pairwise_item(pairwise_project)
    pairwise_item(pairwise_project)
    lease_id = claim(login(api, annotator), pairwise_project).json()["id"]
    answer = {"client_id": str(uuid.uuid4()), "choice": "tie"}
    with django_assert_max_num_queries(SUBMIT_QUERIES):
        response = submit(api, lease_id, answer)
    assert response.status_code == 201
    assert response.json()["next"] is not None


# Measured on SQLite and PostgreSQL. Claim: auth 2, membership 1, savepoint 2 (tests only; a
# transaction in production), lease 4 (the item's shown fields come with its lock), responses 1.
# Submit: auth 2, lease with membership 1, the service's compare-and-set 3 + savepoint 2, then
# the next lease: 3 + savepoint 2 (no lookup of a live lease, just closed), responses 1.
CLAIM_QUERIES = 10
SUBMIT_QUERIES = 14


# --- authentication and the schema -----------------------------------------------------------


def test_token_auth_works_without_a_session(sft_project, annotator, api):
    response = api.post(
        reverse("api:token"), {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=annotator).key == token
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(reverse("api:project-list")).json()["count"] == 2


def test_token_needs_the_right_password(annotator, api):
    response = api.post(
        reverse("api:token"), {"username": "alice", "password": "guess"}, format="json"
    )
    assert response.status_code == 400
    assert Token.objects.count() == 0


def test_anonymous_calls_answer_401(sft_project, api):
    response = claim(api, sft_project)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_session_writes_need_the_csrf_token(sft_project, annotator):
    ItemFactory(project=sft_project)
    strict = login(APIClient(enforce_csrf_checks=True), annotator)
    response = claim(strict, sft_project)
    assert response.status_code == 403
    assert Assignment.objects.count() == 0


def test_schema_endpoint_serves_openapi(api):
    response = api.get(reverse("api:schema"))
    assert response.status_code == 200
    assert b"/api/projects/{slug}/claim/" in response.content


def test_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert "/api/assignments/{id}/submit/" in (tmp_path / "s.yml").read_text()


def test_docs_page_has_no_inline_script(api):
    page = api.get(reverse("api:docs"))
    assert page.status_code == 200
    assert b"<script>" not in page.content
    script = api.get(reverse("api:docs") + "?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
