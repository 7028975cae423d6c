"""The lease machinery: claim, renew, heartbeat, skip, expire, reacquire."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.models import Assignment, Item, Membership
from labeling.services import assignments
from tests.conftest import assert_statements
from tests.factories import (
    GuidelineFactory,
    ItemFactory,
    MembershipFactory,
    UserFactory,
    pairwise_item,
)

pytestmark = pytest.mark.django_db


def membership(user, project) -> Membership:
    return Membership.objects.select_related("project").get(user=user, project=project)


def test_claim_takes_the_highest_priority_item_and_one_slot(sft_project, annotator):
    # given
    low = ItemFactory(project=sft_project, priority=0)
    high = ItemFactory(project=sft_project, priority=5)
    # when
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    # then
    assert lease.item_id == high.pk
    assert lease.status == Assignment.Status.ACTIVE
    assert Item.objects.get(pk=high.pk).open_slots == 0
    assert Item.objects.get(pk=low.pk).open_slots == 1


def test_claim_again_renews_the_same_lease(sft_project, annotator):
    ItemFactory(project=sft_project)
    ItemFactory(project=sft_project)
    member = membership(annotator, sft_project)
    first = assignments.claim_next(membership=member)
    second = assignments.claim_next(membership=member)
    assert second.pk == first.pk
    assert second.expires_at >= first.expires_at
    assert Assignment.objects.count() == 1


def test_claim_never_gives_an_annotator_the_same_item_twice(pairwise_project, annotator):
    item = pairwise_item(pairwise_project)  # overlap 2: a second slot stays open
    member = membership(annotator, pairwise_project)
    lease = assignments.claim_next(membership=member)
    assignments.skip(assignment=lease, user=annotator, reason="unclear")
    assert assignments.claim_next(membership=member) is None
    assert Item.objects.get(pk=item.pk).open_slots == 2


def test_claim_respects_overlap(sft_project, annotator, other_annotator):
    ItemFactory(project=sft_project)  # overlap 1
    assert assignments.claim_next(membership=membership(annotator, sft_project)) is not None
    assert assignments.claim_next(membership=membership(other_annotator, sft_project)) is None


def test_claim_skips_items_that_are_not_active(sft_project, annotator):
    ItemFactory(project=sft_project, status=Item.Status.DUPLICATE)
    assert assignments.claim_next(membership=membership(annotator, sft_project)) is None


def test_claim_is_gated_on_the_current_guidelines(sft_project, annotator):
    ItemFactory(project=sft_project)
    version = GuidelineFactory(project=sft_project, number=1)
    sft_project.current_guideline = version
    sft_project.save()
    with pytest.raises(assignments.GuidelinesNotAcknowledged):
        assignments.claim_next(membership=membership(annotator, sft_project))
    assert Assignment.objects.count() == 0


def test_pairwise_order_is_randomized_per_lease_and_stored(pairwise_project, db):
    for _ in range(40):
        pairwise_item(pairwise_project)
    swapped = []
    for n in range(40):
        user = UserFactory(username=f"judge{n}")
        MembershipFactory(user=user, project=pairwise_project)
        swapped.append(
            assignments.claim_next(membership=membership(user, pairwise_project)).swapped
        )
    assert set(swapped) == {True, False}
    assert Assignment.objects.filter(swapped=True).count() == sum(swapped)


def test_order_is_fixed_when_randomization_is_off(pairwise_project, annotator):
    pairwise_project.randomize_order = False
    pairwise_project.save()
    pairwise_item(pairwise_project)
    assert (
        assignments.claim_next(membership=membership(annotator, pairwise_project)).swapped is False
    )


def test_heartbeat_extends_the_lease(sft_project, annotator):
    ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    until = assignments.heartbeat(assignment=lease, user=annotator)
    assert Assignment.objects.get(pk=lease.pk).expires_at == until
    assert until > timezone.now() + timedelta(seconds=sft_project.lease_seconds - 5)


def test_heartbeat_after_expiry_raises_lease_lost(sft_project, annotator):
    ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    with pytest.raises(assignments.LeaseLost) as lost:
        assignments.heartbeat(assignment=lease, user=annotator)
    assert lost.value.item_open is True


def test_release_expired_frees_each_slot_exactly_once(sft_project, annotator):
    item = ItemFactory(project=sft_project)
    assignments.claim_next(membership=membership(annotator, sft_project))
    later = timezone.now() + timedelta(hours=1)
    assert assignments.release_expired_leases(now=later) == 1
    assert assignments.release_expired_leases(now=later) == 0
    assert Item.objects.get(pk=item.pk).open_slots == 1
    assert Assignment.objects.get().status == Assignment.Status.EXPIRED


def test_release_leaves_live_leases_alone(sft_project, annotator):
    item = ItemFactory(project=sft_project)
    assignments.claim_next(membership=membership(annotator, sft_project))
    assert assignments.release_expired_leases() == 0
    assert Item.objects.get(pk=item.pk).open_slots == 0


def test_expired_item_goes_to_the_next_annotator(sft_project, annotator, other_annotator):
    item = ItemFactory(project=sft_project)
    assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    lease = assignments.claim_next(membership=membership(other_annotator, sft_project))
    assert lease.item_id == item.pk


def test_skip_returns_the_slot_and_records_the_reason(sft_project, annotator):
    item = ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.skip(assignment=lease, user=annotator, reason="offensive")
    assignments.skip(assignment=lease, user=annotator, reason="offensive")  # idempotent
    lease.refresh_from_db()
    assert (lease.status, lease.skip_reason) == (Assignment.Status.SKIPPED, "offensive")
    assert Item.objects.get(pk=item.pk).open_slots == 1


def test_skip_of_an_expired_lease_raises_lease_lost(sft_project, annotator):
    ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    with pytest.raises(assignments.LeaseLost):
        assignments.skip(assignment=lease, user=annotator, reason="unclear")


def test_reacquire_takes_a_lapsed_lease_back_when_a_slot_is_free(sft_project, annotator):
    item = ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    with transaction.atomic():
        assert assignments.reacquire(lease) is True
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.ACTIVE
    assert Item.objects.get(pk=item.pk).open_slots == 0


def test_reacquire_fails_and_changes_nothing_when_the_slot_is_taken(
    sft_project, annotator, other_annotator
):
    item = ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=membership(annotator, sft_project))
    assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1))
    assignments.claim_next(membership=membership(other_annotator, sft_project))
    with transaction.atomic():
        assert assignments.reacquire(lease) is False
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.EXPIRED
    assert Item.objects.get(pk=item.pk).open_slots == 0


def test_database_refuses_two_live_leases_for_one_annotator(sft_project, annotator):
    first, second = ItemFactory(project=sft_project), ItemFactory(project=sft_project)
    until = timezone.now() + timedelta(minutes=5)
    Assignment.objects.create(
        project=sft_project, item=first, annotator=annotator, expires_at=until
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            project=sft_project, item=second, annotator=annotator, expires_at=until
        )


def test_database_refuses_the_same_item_twice_for_one_annotator(sft_project, annotator):
    item = ItemFactory(project=sft_project)
    until = timezone.now() + timedelta(minutes=5)
    Assignment.objects.create(
        project=sft_project, item=item, annotator=annotator, expires_at=until, status="skipped"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            project=sft_project, item=item, annotator=annotator, expires_at=until
        )


def test_database_refuses_negative_open_slots(sft_project):
    item = ItemFactory(project=sft_project, open_slots=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(open_slots=-1)


def test_claim_query_count(sft_project, annotator):
    ItemFactory(project=sft_project)
    member = membership(annotator, sft_project)
    # held-lease lookup, lock the next item, take its slot, insert the lease
    with assert_statements(4):
        assignments.claim_next(membership=member)
