"""Gold items: mixed into claims at the project rate, graded, pausing and resuming annotators."""

import random
import uuid

import pytest
from django.urls import reverse

from labeling.models import Annotation, Assignment, GoldLabel, Item, Membership
from labeling.services import annotations, assignments, gold
from tests.conftest import assert_statements
from tests.exports.builders import vote
from tests.factories import ItemFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


def member(user, project):
    return Membership.objects.select_related("project").get(user=user, project=project)


def gold_items(project, count, choice="a"):
    items = [pairwise_item(project) for _ in range(count)]
    for item in items:
        gold.mark_gold(item=item, created_by=None, choice=choice, explanation="Rule 2: *facts*.")
    return items


def test_the_gold_draw_hits_the_project_rate():
    rng = random.Random(2024)
    hits = sum(assignments.draws_gold(5, rng) for _ in range(20_000))
    # 5% of 20,000 = 1,000; the standard deviation is ~31, so +-150 is ~5 sigma.
    assert 850 <= hits <= 1150
    assert not any(assignments.draws_gold(0, rng) for _ in range(1000))


def test_gold_is_mixed_into_claims_at_the_rate_with_a_fixed_seed(pairwise_project, annotator):
    # given 400 regular items, 60 gold items and a 10% gold rate
    pairwise_project.gold_percent = 10
    pairwise_project.save()
    for _ in range(400):
        ItemFactory(project=pairwise_project)
    gold_items(pairwise_project, 60)
    membership = member(annotator, pairwise_project)
    rng = random.Random(11)
    # when the annotator claims and skips 300 times
    for _ in range(300):
        lease = assignments.claim_next(membership=membership, renew=False, rng=rng)
        assignments.skip(assignment=lease, user=annotator, reason="other")
    # then about 30 were gold (sd ~5.2: +-15 is ~3 sigma), and gold leases took no slot
    served = Assignment.objects.filter(annotator=annotator, gold=True)
    assert 15 <= served.count() <= 45
    assert set(served.values_list("item__status", flat=True)) == {"gold"}
    assert not Assignment.objects.filter(annotator=annotator, gold=False, item__status="gold")


def test_a_claim_without_gold_runs_the_same_queries_as_before(pairwise_project, annotator):
    # given a project with gold items but a rate of 0 (and, below, a draw that misses)
    pairwise_item(pairwise_project)
    gold_items(pairwise_project, 1)
    membership = member(annotator, pairwise_project)
    # then a fresh claim is: lock the next item, take its slot, insert the lease
    with assert_statements(3):
        assignments.claim_next(membership=membership, renew=False)


def test_a_gold_item_is_served_only_once_to_each_annotator(pairwise_project, annotator):
    pairwise_project.gold_percent = 100
    pairwise_project.save()
    [item] = gold_items(pairwise_project, 1)
    regular = pairwise_item(pairwise_project)
    membership = member(annotator, pairwise_project)
    first = assignments.claim_next(membership=membership, renew=False)
    assignments.skip(assignment=first, user=annotator, reason="other")
    second = assignments.claim_next(membership=membership, renew=False)
    assert (first.item_id, first.gold, second.item_id, second.gold) == (
        item.pk, True, regular.pk, False,
    )  # fmt: skip


def answer_gold(annotator, project, side):
    """Claim the next (gold) item and answer it; screen side mapped back through `swapped`."""
    lease = assignments.claim_next(membership=member(annotator, project), renew=False)
    assert lease.gold
    data = {"client_id": str(uuid.uuid4()), "choice": side, "strength": 2}
    annotations.submit(assignment=lease, user=annotator, data=data)
    return lease


def side_for(lease, choice):
    return annotations.to_screen(choice, lease.swapped)


def test_low_gold_accuracy_pauses_the_annotator_and_an_admin_resumes(
    pairwise_project, annotator, queue_admin, monkeypatch
):
    # given min 3 gold answers, 70% accuracy, and only gold items served
    monkeypatch.setattr(assignments, "_coin", lambda: False)
    pairwise_project.gold_percent = 100
    pairwise_project.gold_min_answers = 3
    pairwise_project.save()
    gold_items(pairwise_project, 5, choice="a")
    # when the annotator answers right, wrong, wrong (1/3 < 0.7)
    for side in ("left", "right"):
        answer_gold(annotator, pairwise_project, side)
    assert member(annotator, pairwise_project).paused_at is None  # 2 answers: too few to judge
    answer_gold(annotator, pairwise_project, "right")
    # then they are paused and claims are refused
    paused = member(annotator, pairwise_project)
    assert paused.paused_reason == "Gold accuracy 1/3 is below 70%."
    with pytest.raises(assignments.AnnotatorPaused):
        assignments.claim_next(membership=paused)
    assert [g.correct for g in gold.answers(paused)] == [True, False, False]
    # when an admin resumes them, they claim again and old answers stop counting
    gold.resume(membership=paused)
    resumed = member(annotator, pairwise_project)
    assert resumed.paused_at is None
    assert gold.answers(resumed) == []
    assert assignments.claim_next(membership=resumed) is not None


def test_the_queue_page_explains_a_pause_and_the_admin_sees_it(
    client, pairwise_project, annotator, queue_admin
):
    Membership.objects.filter(user=annotator, project=pairwise_project).update(
        paused_at="2025-03-01T12:00:00Z", paused_reason="Gold accuracy 1/5 is below 70%."
    )
    pairwise_item(pairwise_project)
    client.force_login(annotator)
    html = client.get(reverse("labeling:queue", args=[pairwise_project.slug])).content.decode()
    assert 'id="queue-paused"' in html
    assert "You are paused on this project" in html
    assert Assignment.objects.count() == 0
    client.force_login(queue_admin)
    html = client.get(reverse("labeling:project", args=[pairwise_project.slug])).content.decode()
    assert "1 annotator paused for low gold accuracy: alice." in html
    resume = reverse(
        "labeling:member-resume",
        args=[pairwise_project.slug, member(annotator, pairwise_project).pk],
    )
    assert client.post(resume).status_code == 302
    assert member(annotator, pairwise_project).paused_at is None


def test_resume_is_admin_only(client, pairwise_project, annotator, reviewer):
    Membership.objects.filter(user=annotator).update(paused_at="2025-03-01T12:00:00Z")
    client.force_login(reviewer)
    target = member(annotator, pairwise_project)
    url = reverse("labeling:member-resume", args=[pairwise_project.slug, target.pk])
    assert client.post(url).status_code == 403
    assert member(annotator, pairwise_project).paused_at is not None


def test_an_annotator_sees_the_gold_items_they_missed_with_the_expected_answer(
    client, pairwise_project, annotator
):
    [item] = gold_items(pairwise_project, 1, choice="b")
    lease = Assignment.objects.create(project=pairwise_project, item=item, annotator=annotator,
                                      gold=True, expires_at="2030-01-01T00:00:00Z")  # fmt: skip
    data = {"client_id": str(uuid.uuid4()), "choice": "left", "strength": 1}
    annotations.submit(assignment=lease, user=annotator, data=data)
    client.force_login(annotator)
    html = client.get(reverse("labeling:feedback", args=[pairwise_project.slug])).content.decode()
    assert "0 of 1 check items answered as expected." in html
    # the lease was not swapped: response B was on the right
    assert '<td class="expected">Right response: “B answer to ' in html
    assert "<em>facts</em>" in html


def test_marking_gold_over_the_admin_page(client, pairwise_project, queue_admin):
    item = pairwise_item(pairwise_project, external_id="p-9")
    client.force_login(queue_admin)
    url = reverse("labeling:gold-mark", args=[pairwise_project.slug])
    response = client.post(url, {"item": "p-9", "choice": "a", "explanation": "See 2."})
    assert response.status_code == 302
    assert Item.objects.get(pk=item.pk).status == "gold"
    assert GoldLabel.objects.get(item=item).choice == "a"
    refused = client.post(url, {"item": "p-9", "choice": ""})
    assert refused.status_code == 422
    assert GoldLabel.objects.get(item=item).choice == "a"


def test_promoting_unanimous_items_to_gold(pairwise_project):
    unanimous = pairwise_item(pairwise_project)
    split = pairwise_item(pairwise_project)
    few = pairwise_item(pairwise_project)
    for choice in ("b", "b", "b"):
        vote(unanimous, UserFactory(), choice)
    for choice in ("a", "a", "b"):
        vote(split, UserFactory(), choice)
    for choice in ("a", "a"):
        vote(few, UserFactory(), choice)
    done = gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None)
    assert done == gold.Promotion(promoted=1, more=False)
    assert list(GoldLabel.objects.values_list("item_id", "choice")) == [(unanimous.pk, "b")]
    assert list(Item.objects.filter(status="gold").values_list("pk", flat=True)) == [unanimous.pk]


def test_sft_gold_is_graded_by_rating_range_and_flags(sft_project):
    item = ItemFactory(project=sft_project)
    label = gold.mark_gold(item=item, created_by=None, min_rating=1, max_rating=2, flags=["unsafe"])

    def Answer(rating, flags):
        return Annotation(rating=rating, flags=flags)

    assert gold.is_correct(label, Answer(2, ["unsafe", "pii"]))
    assert not gold.is_correct(label, Answer(3, ["unsafe"]))
    assert not gold.is_correct(label, Answer(1, []))
    with pytest.raises(gold.GoldError):
        gold.mark_gold(item=item, created_by=None, choice="a")
