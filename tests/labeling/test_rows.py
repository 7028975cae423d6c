"""Hand-written hot statements give what the ORM gives.

`labeling.rows` loads and inserts model rows with SQL written once per model; the lease lookup
(`permissions.lease_for`) and token authentication use it. Each instance must equal, field by
field, what the ORM reads for the same row, on SQLite and on PostgreSQL (JSON, datetimes,
booleans, UUIDs and NULLs included).
"""

import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import rows
from labeling.access import membership_for
from labeling.api.permissions import lease_for
from labeling.models import Annotation, Assignment, GuidelineVersion, Item, Membership, Project
from labeling.services import assignments, guidelines
from tests.factories import ItemFactory, pairwise_item

pytestmark = pytest.mark.django_db


def field_values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def loaded(model, pk):
    columns, table = rows.select_list(model, "x"), model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} x WHERE x.id = %s", [pk])  # noqa: S608
        return rows.load(model, cursor.fetchone())


def lease(user, project) -> Assignment:
    member = Membership.objects.select_related("project").get(user=user, project=project)
    return assignments.claim_next(membership=member)


def test_a_loaded_row_equals_the_orms(pairwise_project, annotator):
    pairwise_project.criteria = ["helpfulness", "honesty"]  # JSON
    pairwise_project.save()
    pairwise_item(pairwise_project)
    held = lease(annotator, pairwise_project)  # datetimes, booleans, a NULL finished_at
    for model, pk in ((Project, pairwise_project.pk), (Assignment, held.pk)):
        mine, orms = loaded(model, pk), model.objects.get(pk=pk)
        assert field_values(mine) == field_values(orms)
        assert (mine._state.adding, mine._state.db) == (False, "default")


def test_an_inserted_annotation_reads_back_as_given(pairwise_project, annotator):
    pairwise_item(pairwise_project)
    held = lease(annotator, pairwise_project)
    client_id = uuid.uuid4()
    annotation = Annotation(
        assignment=held,
        project_id=held.project_id,
        item_id=held.item_id,
        annotator=annotator,
        client_id=client_id,
        choice="a",
        strength=2,
        criteria={"helpfulness": "b"},
        flags=["pii"],
        rationale="Shorter <b>and</b> right.",
        time_spent_ms=4200,
    )
    rows.insert(annotation)
    stored = Annotation.objects.get()
    assert annotation.pk == stored.pk
    assert annotation._state.adding is False
    assert annotation.created_at is not None  # auto_now_add, as save() sets it
    assert field_values(stored) == field_values(annotation)
    assert stored.client_id == client_id
    assert (stored.criteria, stored.flags) == ({"helpfulness": "b"}, ["pii"])


def test_lease_for_loads_the_lease_project_membership_and_guideline(
    sft_project, annotator, queue_admin
):
    guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    member = Membership.objects.select_related("project").get(user=annotator, project=sft_project)
    guidelines.acknowledge(membership=member, version=sft_project.current_guideline)
    ItemFactory(project=sft_project)
    held = lease(annotator, sft_project)
    assignment, membership = lease_for(annotator, held.pk)
    assert field_values(assignment) == field_values(Assignment.objects.get(pk=held.pk))
    assert field_values(membership) == field_values(Membership.objects.get(pk=member.pk))
    assert field_values(membership.project) == field_values(Project.objects.get(pk=sft_project.pk))
    version = GuidelineVersion.objects.get(project=sft_project)
    assert field_values(membership.acknowledged_guideline) == field_values(version)
    assert assignment.project is membership.project


def test_lease_for_without_an_acknowledged_guideline(sft_project, annotator):
    ItemFactory(project=sft_project)
    held = lease(annotator, sft_project)
    _, membership = lease_for(annotator, held.pk)
    assert membership.acknowledged_guideline_id is None
    assert membership.acknowledged_guideline is None


def test_lease_for_is_404_for_others_and_for_ids_past_the_column(
    sft_project, annotator, other_annotator
):
    ItemFactory(project=sft_project)
    held = lease(annotator, sft_project)
    for user, pk in ((other_annotator, held.pk), (annotator, held.pk + 1), (annotator, 2**63)):
        with pytest.raises(Http404):
            lease_for(user, pk)


def test_a_lease_id_past_the_column_is_a_404_over_http(annotator):
    api = APIClient()
    api.force_login(annotator)
    response = api.post(reverse("api:heartbeat", kwargs={"pk": 2**64}))
    assert response.status_code == 404


# --- token authentication ---------------------------------------------------------------------


def token_call(key: str):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get(reverse("api:project-list"))


def test_a_token_authenticates_its_user(sft_project, pairwise_project, annotator):
    token = Token.objects.create(user=annotator)
    response = token_call(token.key)
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == sorted(
        [sft_project.slug, pairwise_project.slug]
    )


def test_an_unknown_token_answers_401(annotator):
    Token.objects.create(user=annotator)
    response = token_call("0" * 40)
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})


def test_an_inactive_users_token_answers_401(annotator):
    token = Token.objects.create(user=annotator)
    annotator.is_active = False
    annotator.save()
    response = token_call(token.key)
    assert (response.status_code, response.json()) == (401, {"detail": "User inactive or deleted."})


# --- the membership lookup and the live lease -------------------------------------------------


def test_membership_for_loads_the_project_and_both_guidelines(sft_project, annotator, queue_admin):
    guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    member = Membership.objects.get(user=annotator, project=sft_project)
    guidelines.acknowledge(membership=member, version=sft_project.current_guideline)
    guidelines.publish(project=sft_project, author=queue_admin, body="v2", changelog="v2")
    found = membership_for(annotator, sft_project.slug)
    assert field_values(found) == field_values(Membership.objects.get(pk=member.pk))
    assert field_values(found.project) == field_values(Project.objects.get(pk=sft_project.pk))
    v1, v2 = GuidelineVersion.objects.filter(project=sft_project).order_by("number")
    assert field_values(found.acknowledged_guideline) == field_values(v1)
    assert field_values(found.project.current_guideline) == field_values(v2)
    assert found.needs_acknowledgement is True


def test_membership_for_without_guidelines(sft_project, annotator):
    found = membership_for(annotator, sft_project.slug)
    assert (found.project.current_guideline, found.acknowledged_guideline) == (None, None)
    assert found.needs_acknowledgement is False


def test_membership_for_is_404_for_outsiders_and_anonymous(sft_project, outsider):
    for user in (outsider, AnonymousUser()):
        with pytest.raises(Http404):
            membership_for(user, sft_project.slug)


def test_membership_for_is_403_for_a_role_outside_the_allowed(sft_project, annotator):
    with pytest.raises(PermissionDenied):
        membership_for(annotator, sft_project.slug, roles=["admin"])


def test_current_lease_loads_the_lease_with_its_item(pairwise_project, annotator):
    item = pairwise_item(pairwise_project)
    held = lease(annotator, pairwise_project)
    member = Membership.objects.select_related("project").get(
        user=annotator, project=pairwise_project
    )
    found = assignments.current_lease(membership=member)
    assert field_values(found) == field_values(Assignment.objects.get(pk=held.pk))
    assert field_values(found.item) == field_values(Item.objects.get(pk=item.pk))
    Assignment.objects.filter(pk=held.pk).update(status=Assignment.Status.SKIPPED)
    assert assignments.current_lease(membership=member) is None
