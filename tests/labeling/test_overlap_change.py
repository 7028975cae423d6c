"""Changing a project's overlap carries to its items' open slots.

open_slots = overlap - live leases - submitted leases must hold after the change, for items
in any state, so that raising the overlap queues every item for the extra judgements and
lowering it stops new claims on items that already have enough.
"""

import uuid

import pytest
from django.urls import reverse

from labeling.models import Item, Membership, Project
from labeling.services import annotations, assignments, projects
from tests.factories import pairwise_item

pytestmark = pytest.mark.django_db


def lease(user, project):
    member = Membership.objects.select_related("project").get(user=user, project=project)
    return assignments.claim_next(membership=member)


def change_overlap(client, admin, project, overlap: int):
    client.force_login(admin)
    url = reverse("labeling:settings", args=[project.slug])
    form = client.get(url).context["form"]
    data = {**{k: v for k, v in form.initial.items() if v is not None}, "overlap": overlap}
    data["flags"] = ", ".join(data.get("flags") or [])
    data["criteria"] = ", ".join(data.get("criteria") or [])
    assert client.post(url, data).status_code == 302


def slots(*items) -> list[int]:
    return [Item.objects.get(pk=item.pk).open_slots for item in items]


@pytest.fixture
def three_items(pairwise_project, annotator, other_annotator):
    """Overlap 2: one untouched item, one leased by alice, one judged by alice and leased by
    bob."""
    untouched, one, both = (pairwise_item(pairwise_project) for _ in range(3))
    Item.objects.filter(pk__in=[untouched.pk, one.pk]).update(priority=0)
    Item.objects.filter(pk=both.pk).update(priority=2)
    Item.objects.filter(pk=one.pk).update(priority=1)
    first = lease(annotator, pairwise_project)  # both (highest priority)
    lease(other_annotator, pairwise_project)  # both
    answer = {"client_id": str(uuid.uuid4()), "choice": "tie"}
    annotations.submit(assignment=first, user=annotator, data=answer)
    assert lease(annotator, pairwise_project).item_id == one.pk
    return untouched, one, both


def test_raising_the_overlap_opens_a_slot_on_every_item(client, queue_admin, three_items):
    untouched, one, both = three_items
    project = Project.objects.get(pk=untouched.project_id)
    assert slots(untouched, one, both) == [2, 1, 0]
    change_overlap(client, queue_admin, project, 3)
    assert slots(untouched, one, both) == [3, 2, 1]


def test_lowering_the_overlap_closes_slots_and_stops_at_zero(client, queue_admin, three_items):
    untouched, one, both = three_items
    project = Project.objects.get(pk=untouched.project_id)
    change_overlap(client, queue_admin, project, 1)
    assert slots(untouched, one, both) == [1, 0, 0]  # both keeps its two leases


def test_saving_other_settings_leaves_the_slots(client, queue_admin, three_items):
    untouched, one, both = three_items
    project = Project.objects.get(pk=untouched.project_id)
    change_overlap(client, queue_admin, project, 2)
    assert slots(untouched, one, both) == [2, 1, 0]


def test_gold_items_take_no_slot_and_duplicates_shift_too(pairwise_project):
    gold = pairwise_item(pairwise_project)
    duplicate = pairwise_item(pairwise_project)
    Item.objects.filter(pk=gold.pk).update(status=Item.Status.GOLD, open_slots=0)
    Item.objects.filter(pk=duplicate.pk).update(status=Item.Status.DUPLICATE)
    assert projects.shift_open_slots(project=pairwise_project, delta=1) == 1
    assert slots(gold, duplicate) == [0, 3]
