"""Gold leases give back no slot (they took none), and demoting a gold item recounts its slots."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Assignment, GoldLabel, Item, Membership, Project
from labeling.services import annotations, assignments, gold
from tests.exports.builders import vote
from tests.factories import UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


def member(user, project):
    return Membership.objects.select_related("project").get(user=user, project=project)


@pytest.fixture
def gold_item(pairwise_project):
    pairwise_project.gold_percent = 100
    pairwise_project.save()
    item = pairwise_item(pairwise_project)
    gold.mark_gold(item=item, created_by=None, choice="a")
    return item


def slots(item):
    return Item.objects.get(pk=item.pk).open_slots


def gold_lease(user, project):
    lease = assignments.claim_next(membership=member(user, project), renew=False)
    assert lease.gold
    return lease


def test_a_skipped_or_lapsed_gold_lease_gives_back_no_slot(
    pairwise_project, gold_item, annotator, other_annotator
):
    # given overlap 2: the gold item keeps the 2 slots it had
    skipped = gold_lease(annotator, pairwise_project)
    assignments.skip(assignment=skipped, user=annotator, reason="unclear")
    gold_lease(other_annotator, pairwise_project)
    released = assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    assert released == 1
    assert slots(gold_item) == 2
    assert set(Assignment.objects.values_list("status", flat=True)) == {"skipped", "expired"}


def test_a_regular_skip_and_lapse_still_give_the_slot_back(pairwise_project, annotator):
    item = pairwise_item(pairwise_project)
    lease = assignments.claim_next(membership=member(annotator, pairwise_project))
    assert slots(item) == 1
    assignments.skip(assignment=lease, user=annotator, reason="unclear")
    assert slots(item) == 2


def test_demoting_recounts_slots_and_turns_live_gold_leases_into_regular_ones(
    pairwise_project, gold_item, annotator, other_annotator, reviewer
):
    # given one graded gold answer and one live gold lease on the item (overlap 2)
    answered = gold_lease(annotator, pairwise_project)
    data = {"client_id": str(uuid.uuid4()), "choice": "left", "strength": 2}
    annotations.submit(assignment=answered, user=annotator, data=data)
    live = gold_lease(other_annotator, pairwise_project)
    # when an admin demotes it
    assert gold.demote(item=gold_item) is True
    # then it is a regular item with no free slot, its label gone, the live lease regular
    item = Item.objects.get(pk=gold_item.pk)
    assert (item.status, item.open_slots) == ("active", 0)
    assert GoldLabel.objects.count() == 0
    assert Assignment.objects.get(pk=live.pk).gold is False
    assert gold.answers(member(annotator, pairwise_project)) == []
    # and when the live lease lapses, its slot comes back, once
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    assert slots(item) == 1
    assert gold.demote(item=item) is False
    assert slots(item) == 1
    assert Project.objects.get(pk=pairwise_project.pk).review_triaged_through == 0


def test_demoting_an_unanswered_gold_item_gives_it_the_full_overlap(pairwise_project, gold_item):
    Item.objects.filter(pk=gold_item.pk).update(open_slots=7)  # inflated by an old bug
    gold.demote(item=gold_item)
    assert slots(gold_item) == 2


def test_demoting_over_the_quality_page(client, pairwise_project, gold_item, queue_admin,
                                         reviewer):  # fmt: skip
    url = reverse("labeling:gold-demote", args=[pairwise_project.slug, gold_item.pk])
    client.force_login(reviewer)
    assert client.post(url).status_code == 403
    client.force_login(queue_admin)
    page = client.get(reverse("labeling:quality", args=[pairwise_project.slug]))
    assert url in page.content.decode()
    assert client.post(url).status_code == 302
    assert Item.objects.get(pk=gold_item.pk).status == "active"


def test_a_demoted_item_with_enough_votes_goes_to_triage(pairwise_project, gold_item):
    from labeling.services import reviews

    for choice in ("a", "b"):
        vote(gold_item, UserFactory(), choice)
    Project.objects.filter(pk=pairwise_project.pk).update(review_triaged_through=10**9)
    gold.demote(item=gold_item)
    project = Project.objects.get(pk=pairwise_project.pk)
    assert reviews.triage(project=project, after_annotation=project.review_triaged_through) == 1
