"""Gold labels that must not reach the database, bulk promotion, and the pairwise feedback
shown in the sides the annotator saw."""

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Assignment, GoldLabel, Item, Review, ReviewTask
from labeling.services import annotations, gold
from tests.conftest import assert_statements
from tests.exports.builders import answer, vote
from tests.factories import ItemFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


# Expected rating range --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "field", "message"),
    [
        (4, 2, "max_rating", "max_rating must not be below min_rating"),
        (1, 6, "max_rating", "max_rating must be between 1 and 5"),
        (0, 3, "min_rating", "min_rating must be between 1 and 5"),
    ],
)
def test_a_rating_range_that_does_not_fit_is_a_gold_error(sft_project, low, high, field, message):
    item = ItemFactory(project=sft_project)
    with pytest.raises(gold.GoldError) as refused:
        gold.mark_gold(item=item, created_by=None, min_rating=low, max_rating=high)
    assert (str(refused.value), refused.value.field) == (message, field)
    assert GoldLabel.objects.count() == 0
    assert Item.objects.get(pk=item.pk).status == "active"


def test_the_gold_form_shows_a_reversed_range_on_the_field(client, sft_project, queue_admin):
    item = ItemFactory(project=sft_project, external_id="s-1")
    client.force_login(queue_admin)
    url = reverse("labeling:gold-mark", args=[sft_project.slug])
    response = client.post(url, {"item": "s-1", "min_rating": "4", "max_rating": "2"})
    assert response.status_code == 422
    errors = response.context["gold_form"].errors
    assert errors == {"max_rating": ["max_rating must not be below min_rating"]}
    assert GoldLabel.objects.count() == 0
    assert Item.objects.get(pk=item.pk).status == "active"


def test_the_api_refuses_a_rating_above_the_scale(sft_project, queue_admin):
    item = ItemFactory(project=sft_project)
    api = APIClient()
    api.force_authenticate(queue_admin)
    url = reverse("api:gold-list", kwargs={"slug": sft_project.slug})
    refused = api.post(url, {"item": item.pk, "min_rating": 2, "max_rating": 7}, format="json")
    assert (refused.status_code, refused.json()) == (
        400, {"detail": "max_rating must be between 1 and 5"},
    )  # fmt: skip
    assert GoldLabel.objects.count() == 0


# Only active items become gold ------------------------------------------------------------


@pytest.mark.parametrize("status", ["duplicate", "filtered"])
def test_a_duplicate_or_filtered_item_cannot_become_gold(pairwise_project, status):
    item = pairwise_item(pairwise_project, status=status)
    with pytest.raises(gold.GoldError) as refused:
        gold.mark_gold(item=item, created_by=None, choice="a")
    assert str(refused.value) == f"only active items can be gold items; this one is {status}"
    assert refused.value.field == "item"
    assert GoldLabel.objects.count() == 0
    # so a demotion cannot bring it back into the queue and the exports
    assert gold.demote(item=item) is False
    assert Item.objects.get(pk=item.pk).status == status


def test_marking_a_gold_item_again_replaces_its_label(pairwise_project):
    item = pairwise_item(pairwise_project)
    gold.mark_gold(item=item, created_by=None, choice="a")
    gold.mark_gold(item=item, created_by=None, choice="b")
    assert list(GoldLabel.objects.values_list("item_id", "choice")) == [(item.pk, "b")]
    assert Item.objects.get(pk=item.pk).status == "gold"


def test_the_gold_form_and_the_api_refuse_a_duplicate(client, pairwise_project, queue_admin):
    item = pairwise_item(pairwise_project, external_id="p-1", status="duplicate")
    client.force_login(queue_admin)
    url = reverse("labeling:gold-mark", args=[pairwise_project.slug])
    response = client.post(url, {"item": "p-1", "choice": "a"})
    assert response.status_code == 422
    assert response.context["gold_form"].errors == {
        "item": ["only active items can be gold items; this one is duplicate"]
    }
    api = APIClient()
    api.force_authenticate(queue_admin)
    api_url = reverse("api:gold-list", kwargs={"slug": pairwise_project.slug})
    refused = api.post(api_url, {"item": item.pk, "choice": "a"}, format="json")
    assert (refused.status_code, refused.json()) == (
        400, {"detail": "only active items can be gold items; this one is duplicate"},
    )  # fmt: skip
    assert Item.objects.get(pk=item.pk).status == "duplicate"
    assert GoldLabel.objects.count() == 0


# Promotion --------------------------------------------------------------------------------


def unanimous_items(project, count, choice="b", votes=3):
    items = [pairwise_item(project) for _ in range(count)]
    voters = [UserFactory() for _ in range(votes)]
    for item in items:
        for voter in voters:
            vote(item, voter, choice)
    return items


def test_promotion_is_capped_per_run_and_says_whether_more_remain(pairwise_project):
    items = unanimous_items(pairwise_project, 5)
    first = gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None, limit=3)
    assert first == gold.Promotion(promoted=3, more=True)
    assert sorted(GoldLabel.objects.values_list("item_id", flat=True)) == [
        item.pk for item in items[:3]
    ]
    second = gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None, limit=3)
    assert second == gold.Promotion(promoted=2, more=False)
    again = gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None, limit=3)
    assert again == gold.Promotion(promoted=0, more=False)
    assert GoldLabel.objects.count() == 5
    assert set(GoldLabel.objects.values_list("choice", flat=True)) == {"b"}
    assert Item.objects.filter(status="gold").count() == 5


def test_promotion_runs_a_fixed_number_of_queries(pairwise_project):
    unanimous_items(pairwise_project, 6)
    # aggregate, lock the batch, insert the labels, update the statuses
    with assert_statements(4):
        done = gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None)
    assert done == gold.Promotion(promoted=6, more=False)


def test_promotion_skips_split_blank_and_inactive_items(pairwise_project, sft_project):
    [split] = unanimous_items(pairwise_project, 1)
    vote(split, UserFactory(), "a")
    unanimous_items(pairwise_project, 1, votes=2)  # too few
    [dropped] = unanimous_items(pairwise_project, 1)
    Item.objects.filter(pk=dropped.pk).update(status="filtered")
    assert gold.promote_unanimous(project=pairwise_project, min_votes=3, created_by=None) == (
        gold.Promotion(promoted=0, more=False)
    )
    # SFT: the same rating everywhere, none missing
    agreed, unrated = ItemFactory(project=sft_project), ItemFactory(project=sft_project)
    for rating in (4, 4, 4):
        answer(agreed, UserFactory(), "text", rating=rating)
    for rating in (4, 4, None):
        answer(unrated, UserFactory(), "text", rating=rating)
    done = gold.promote_unanimous(project=sft_project, min_votes=3, created_by=None)
    assert done == gold.Promotion(promoted=1, more=False)
    assert list(GoldLabel.objects.values_list("item_id", "min_rating", "max_rating")) == [
        (agreed.pk, 4, 4)
    ]


def test_promoting_over_the_quality_page_says_promoted_items_leave_the_exports(
    client, pairwise_project, queue_admin, monkeypatch
):
    unanimous_items(pairwise_project, 3)
    monkeypatch.setattr(gold, "PROMOTE_BATCH", 2)
    client.force_login(queue_admin)
    page = client.get(reverse("labeling:quality", args=[pairwise_project.slug])).content.decode()
    assert "Gold items are never exported, so promoted items leave the exports." in page
    url = reverse("labeling:gold-promote", args=[pairwise_project.slug])
    response = client.post(url, {"min_votes": 3}, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [
        "2 unanimous items promoted to gold; they are no longer exported. "
        "More remain (at most 2 per run): promote again."
    ]
    assert Item.objects.filter(status="gold").count() == 2


# Pairwise feedback in screen sides --------------------------------------------------------


def test_missed_gold_feedback_shows_the_sides_the_annotator_saw(
    client, pairwise_project, annotator
):
    # given a gold item expecting response A, served with the sides swapped (A on the right)
    item = pairwise_item(pairwise_project, prompt="Capital of France?")
    gold.mark_gold(item=item, created_by=None, choice="a")
    lease = Assignment.objects.create(project=pairwise_project, item=item, annotator=annotator,
                                      gold=True, swapped=True,
                                      expires_at="2030-01-01T00:00:00Z")  # fmt: skip
    # when the annotator picks the left response (stored as B)
    data = {"client_id": str(uuid.uuid4()), "choice": "left", "strength": 1}
    annotations.submit(assignment=lease, user=annotator, data=data)
    # then feedback shows their answer on the left and the expected one on the right
    client.force_login(annotator)
    html = client.get(reverse("labeling:feedback", args=[pairwise_project.slug])).content.decode()
    assert "<td>Left response: “B answer to Capital of France?”</td>" in html
    assert '<td class="expected">Right response: “A answer to Capital of France?”</td>' in html
    assert "Response A" not in html
    assert "Response B" not in html


def test_reviewed_pairwise_feedback_uses_the_lease_sides_escaped_and_truncated(
    client, pairwise_project, annotator
):
    item = pairwise_item(pairwise_project)
    item.responses.filter(position=1).update(text="<b>bold</b> " + "x" * 200)
    annotation = vote(item, annotator, "b", swapped=True)
    task = ReviewTask.objects.create(project=pairwise_project, item=item, status="done")
    review = Review.objects.create(
        task=task, project=pairwise_project, item=item, reviewer=UserFactory(username="rita"),
        decision="accept",
    )  # fmt: skip
    review.verdicts.create(annotation=annotation, accepted=True)
    client.force_login(annotator)
    html = client.get(reverse("labeling:feedback", args=[pairwise_project.slug])).content.decode()
    expected = "Left response: “&lt;b&gt;bold&lt;/b&gt; " + "x" * 67 + "…”"
    assert f"<td>{expected}</td>" in html
