"""The live diff's input limit, and triage counting only the review tasks it inserted."""

import pytest
from django.urls import reverse

from labeling.models import Membership, ReviewTask
from labeling.services import reviews
from labeling.services.annotations import TEXT_LIMIT
from tests.exports.builders import answer, vote
from tests.factories import ItemFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


def leased_sft_task(sft_project, reviewer, annotator):
    item = ItemFactory(project=sft_project)
    answer(item, annotator, "Paris is in Spain.", rating=1)
    reviews.triage(project=sft_project)
    membership = Membership.objects.select_related("project").get(
        user=reviewer, project=sft_project
    )
    return reviews.claim_review(membership=membership)


def diff_url(project, task):
    return reverse("labeling:review-diff", kwargs={"slug": project.slug, "pk": task.pk})


def test_the_live_diff_refuses_a_response_above_the_text_limit(
    client, sft_project, reviewer, annotator
):
    task = leased_sft_task(sft_project, reviewer, annotator)
    client.force_login(reviewer)
    response = client.post(
        diff_url(sft_project, task),
        {"response": "x" * (TEXT_LIMIT + 1)},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#notice"
    html = response.content.decode()
    assert "<strong>response</strong>: at most 100,000 characters; this one has 100,001" in html
    assert "review-diff-" not in html


def test_the_live_diff_still_answers_at_the_limit(client, sft_project, reviewer, annotator):
    task = leased_sft_task(sft_project, reviewer, annotator)
    client.force_login(reviewer)
    response = client.post(
        diff_url(sft_project, task), {"response": "Paris is in France."},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 200
    assert 'id="review-diff-' in response.content.decode()
    at_limit = client.post(diff_url(sft_project, task), {"response": "x" * TEXT_LIMIT},
                           headers={"HX-Request": "true"})  # fmt: skip
    assert at_limit.status_code == 200


def test_triage_counts_only_the_tasks_it_inserted(pairwise_project, monkeypatch):
    # given two disagreeing items, one of which a concurrent triage files first
    first = pairwise_item(pairwise_project)
    second = pairwise_item(pairwise_project)
    for item in (first, second):
        vote(item, UserFactory(), "a")
        vote(item, UserFactory(), "b")
    rules = reviews.review_reasons

    def concurrent_insert(project, item_id, votes):
        if item_id == first.pk:
            ReviewTask.objects.create(project=project, item_id=item_id, status="open",
                                      reasons=["disagreement"])  # fmt: skip
        return rules(project, item_id, votes)

    monkeypatch.setattr(reviews, "review_reasons", concurrent_insert)
    # when this triage inserts its tasks, the first one conflicts
    sent = reviews.triage(project=pairwise_project)
    # then only the second counts as sent to review by this triage, and no task is doubled
    assert sent == 1
    assert ReviewTask.objects.filter(item__in=[first, second]).count() == 2
