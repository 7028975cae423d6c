"""The queue's hot path, made leaner without changing what it answers.

Leases and annotations are rendered by plain functions (serializers.lease_data,
serializers.annotation_data): their JSON must be byte for byte what the serializers that the
OpenAPI schema describes would give. The lease after a submit or skip is claimed without first
looking for a live one (`renew=False`): one made meanwhile must still be the answer.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from labeling.api import serializers as s
from labeling.api.views import shown_lease
from labeling.models import Annotation, Assignment, Item, Membership
from labeling.services import annotations, assignments, guidelines
from tests.factories import ItemFactory, pairwise_item

pytestmark = pytest.mark.django_db


def rendered(data) -> bytes:
    return JSONRenderer().render(data)


def lease_of(user, project):
    member = Membership.objects.select_related("project").get(user=user, project=project)
    return assignments.claim_next(membership=member)


@pytest.mark.parametrize("swapped", [False, True])
def test_a_pairwise_lease_renders_as_its_serializer(
    pairwise_project, annotator, monkeypatch, swapped
):
    monkeypatch.setattr(assignments, "_coin", lambda: swapped)
    pairwise_item(pairwise_project, external_id="p-1")
    lease = shown_lease(lease_of(annotator, pairwise_project), pairwise_project)
    assert rendered(s.lease_data(lease)) == rendered(s.LeaseSerializer(lease).data)


def test_an_sft_lease_renders_as_its_serializer(sft_project, annotator):
    ItemFactory(project=sft_project, draft_response="Draft with ünïcode.")
    lease = shown_lease(lease_of(annotator, sft_project), sft_project)
    assert rendered(s.lease_data(lease)) == rendered(s.LeaseSerializer(lease).data)


def test_an_sft_annotation_renders_as_its_serializer(sft_project, annotator, queue_admin):
    guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    member = Membership.objects.select_related("project").get(user=annotator, project=sft_project)
    guidelines.acknowledge(membership=member, version=sft_project.current_guideline)
    ItemFactory(project=sft_project)
    data = {"client_id": str(uuid.uuid4()), "response": "Yes.", "rating": 4, "flags": ["pii"]}
    annotations.submit(assignment=lease_of(annotator, sft_project), user=annotator, data=data)
    stored = Annotation.objects.select_related("annotator", "guideline").get()
    assert stored.guideline is not None
    assert rendered(s.annotation_data(stored)) == rendered(s.AnnotationSerializer(stored).data)


def test_a_pairwise_annotation_renders_as_its_serializer(pairwise_project, annotator):
    pairwise_item(pairwise_project)
    data = {
        "client_id": str(uuid.uuid4()), "choice": "left", "strength": 3, "rationale": "Shorter.",
        "criteria": {"helpfulness": "left", "honesty": "tie"}, "time_spent_ms": 1200,
    }  # fmt: skip
    annotations.submit(assignment=lease_of(annotator, pairwise_project), user=annotator, data=data)
    stored = Annotation.objects.select_related("annotator").get()
    assert stored.guideline is None
    assert rendered(s.annotation_data(stored)) == rendered(s.AnnotationSerializer(stored).data)


def test_a_claim_that_skips_the_lookup_still_answers_with_a_held_lease_renewed(
    sft_project, annotator
):
    # given a live lease that is about to lapse, taken in another tab, and a free item
    ItemFactory(project=sft_project)
    held = lease_of(annotator, sft_project)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    free = ItemFactory(project=sft_project)
    member = Membership.objects.select_related("project").get(user=annotator, project=sft_project)
    # when a submit elsewhere claims the next lease without looking for a live one
    lease = assignments.claim_next(membership=member, renew=False)
    # then the held lease is the answer, renewed, and the free item keeps its slot
    assert lease.pk == held.pk
    assert Assignment.objects.get(pk=held.pk).expires_at > timezone.now() + timedelta(minutes=5)
    assert Assignment.objects.filter(annotator=annotator).count() == 1
    assert Item.objects.get(pk=free.pk).open_slots == 1


def test_a_held_lease_comes_before_the_guideline_gate_without_the_lookup(
    sft_project, annotator, queue_admin
):
    ItemFactory(project=sft_project)
    held = lease_of(annotator, sft_project)
    guidelines.publish(project=sft_project, author=queue_admin, body="v1", changelog="v1")
    member = Membership.objects.select_related("project").get(user=annotator, project=sft_project)
    assert assignments.claim_next(membership=member, renew=False).pk == held.pk


def test_a_written_out_claim_answers_the_row_it_stored(pairwise_project, annotator, monkeypatch):
    # The claim's statements are SQL written out: the lease it answers is the stored row.
    monkeypatch.setattr(assignments, "_coin", lambda: True)
    ItemFactory(project=pairwise_project, priority=0)
    first = ItemFactory(project=pairwise_project, priority=5, messages=[{"role": "user"}])
    lease = lease_of(annotator, pairwise_project)
    stored = Assignment.objects.get()
    assert (lease.pk, lease.item_id, lease.status) == (stored.pk, first.pk, stored.status)
    assert (lease.swapped, lease.gold) == (stored.swapped, stored.gold) == (True, False)
    assert (lease.expires_at, lease.created_at) == (stored.expires_at, stored.created_at)
    assert lease.item.messages == [{"role": "user"}]
    assert Item.objects.get(pk=first.pk).open_slots == pairwise_project.overlap - 1
