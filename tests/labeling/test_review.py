"""Review: which finished items enter the queue under each rule, the review lease, decisions."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import (
    Annotation,
    AnnotationVerdict,
    GuidelineNote,
    Membership,
    Review,
    ReviewTask,
)
from labeling.services import reviews
from labeling.services.annotations import InvalidAnnotation
from tests.exports.builders import answer, vote
from tests.factories import ItemFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


def member(user, project):
    return Membership.objects.select_related("project").get(user=user, project=project)


def judged(project, *choices, **fields):
    """A pairwise item with one vote per choice, by fresh annotators."""
    item = pairwise_item(project, **fields)
    for choice in choices:
        vote(item, UserFactory(), choice)
    return item


def reasons_of(item):
    return ReviewTask.objects.get(item=item).reasons


# Triage rules ---------------------------------------------------------------------------------


def test_pairwise_items_enter_review_when_votes_disagree_beyond_the_threshold(pairwise_project):
    # given overlap 2 and a threshold of 0.6: a 1-1 split (0.5) is below it, 2-0 is not
    split = judged(pairwise_project, "a", "b")
    agreed = judged(pairwise_project, "b", "b")
    tie_split = judged(pairwise_project, "a", "tie")
    unfinished = judged(pairwise_project, "a")
    # when triaged
    assert reviews.triage(project=pairwise_project) == 2
    # then exactly the split items are open, the agreed one is not needed, the unfinished waits
    assert reasons_of(split) == ["disagreement"]
    assert reasons_of(tie_split) == ["disagreement"]
    assert ReviewTask.objects.get(item=agreed).status == ReviewTask.Status.NOT_NEEDED
    assert reasons_of(agreed) == []
    assert not ReviewTask.objects.filter(item=unfinished).exists()


def test_a_threshold_of_two_thirds_sends_a_two_to_one_majority_to_review(pairwise_project):
    pairwise_project.overlap = 3
    pairwise_project.review_min_agreement = 0.7
    pairwise_project.save()
    two_one = judged(pairwise_project, "a", "a", "b")
    unanimous = judged(pairwise_project, "a", "a", "a")
    assert reviews.triage(project=pairwise_project) == 1
    assert reasons_of(two_one) == ["disagreement"]
    assert reasons_of(unanimous) == []


def test_sft_items_enter_review_when_flagged_or_rated_low(sft_project, annotator):
    # given the default threshold: a rating of 2 or less
    flagged = ItemFactory(project=sft_project)
    answer(flagged, annotator, "Fine.", rating=5, flags=("pii",))
    low = ItemFactory(project=sft_project)
    answer(low, annotator, "Bad.", rating=2)
    both = ItemFactory(project=sft_project)
    answer(both, annotator, "Bad and unsafe.", rating=1, flags=("unsafe",))
    good = ItemFactory(project=sft_project)
    answer(good, annotator, "Good.", rating=3)
    assert reviews.triage(project=sft_project) == 3
    assert reasons_of(flagged) == ["flagged"]
    assert reasons_of(low) == ["low_rating"]
    assert reasons_of(both) == ["flagged", "low_rating"]
    assert reasons_of(good) == []


def test_the_random_sample_is_deterministic_by_seed_and_item_id(sft_project, annotator):
    sft_project.review_sample_percent = 30
    sft_project.quality_seed = 7
    sft_project.save()
    items = [ItemFactory(project=sft_project) for _ in range(40)]
    for item in items:
        answer(item, annotator, "Good.", rating=4)
    expected = {item.pk for item in items if reviews.sampled(7, item.pk, 30)}
    reviews.triage(project=sft_project)
    picked = set(
        ReviewTask.objects.filter(status="open", reasons=["sample"]).values_list(
            "item_id", flat=True
        )
    )
    assert picked == expected
    assert 0 < len(picked) < 40


def test_sampling_is_a_pure_function_with_the_asked_rate():
    hits = sum(reviews.sampled(3, item_id, 10) for item_id in range(10_000))
    assert 900 <= hits <= 1100
    assert [reviews.sampled(3, i, 10) for i in range(50)] == [
        reviews.sampled(3, i, 10) for i in range(50)
    ]
    assert not any(reviews.sampled(3, i, 0) for i in range(1000))
    assert all(reviews.sampled(3, i, 100) for i in range(1000))


def test_triage_is_idempotent(pairwise_project):
    judged(pairwise_project, "a", "b")
    assert reviews.triage(project=pairwise_project) == 1
    assert reviews.triage(project=pairwise_project) == 0
    assert ReviewTask.objects.count() == 1


# Lease and submit -----------------------------------------------------------------------------


def test_a_reviewer_claims_one_task_and_a_reload_renews_it(pairwise_project, reviewer):
    first = judged(pairwise_project, "a", "b")
    judged(pairwise_project, "a", "b")
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    again = reviews.claim_review(membership=member(reviewer, pairwise_project))
    assert (task.item_id, again.pk) == (first.pk, task.pk)
    assert ReviewTask.objects.filter(status="leased").count() == 1


def test_a_reviewer_never_gets_an_item_they_annotated(pairwise_project, reviewer):
    item = pairwise_item(pairwise_project)
    vote(item, reviewer, "a")
    vote(item, UserFactory(), "b")
    reviews.triage(project=pairwise_project)
    assert reviews.claim_review(membership=member(reviewer, pairwise_project)) is None


def test_a_lapsed_review_lease_goes_to_the_next_reviewer(pairwise_project, reviewer, queue_admin):
    judged(pairwise_project, "a", "b")
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    ReviewTask.objects.filter(pk=task.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = reviews.claim_review(membership=member(queue_admin, pairwise_project))
    assert taken.pk == task.pk
    assert ReviewTask.objects.get(pk=task.pk).reviewer == queue_admin
    with pytest.raises(reviews.ReviewLeaseLost):
        reviews.submit(task=task, reviewer=reviewer, data=decision("accept"))


def decision(kind, **fields):
    return {"client_id": str(uuid.uuid4()), "decision": kind, **fields}


def test_adjudicating_stores_the_decision_and_verdicts_and_leaves_annotations(
    pairwise_project, reviewer
):
    item = judged(pairwise_project, "a", "b")
    before = list(Annotation.objects.values_list("pk", "choice", "strength").order_by("pk"))
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    data = decision("adjudicate", choice="b", comment="B is correct.", guideline_note="Unclear.")
    result = reviews.submit(task=task, reviewer=reviewer, data=data)
    review = Review.objects.get()
    assert (result.created, review.item_id, review.reviewer, review.decision) == (
        True, item.pk, reviewer, "adjudicate",
    )  # fmt: skip
    assert (review.choice, review.comment) == ("b", "B is correct.")
    verdicts = AnnotationVerdict.objects.order_by("annotation_id")
    assert [(v.annotation.choice, v.accepted) for v in verdicts] == [("a", False), ("b", True)]
    assert list(Annotation.objects.values_list("pk", "choice", "strength").order_by("pk")) == before
    assert ReviewTask.objects.get(pk=task.pk).status == "done"
    assert GuidelineNote.objects.get().text == "Unclear."


def test_a_repeated_review_submit_answers_the_first(pairwise_project, reviewer):
    judged(pairwise_project, "a", "b")
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    data = decision("reject", comment="Both wrong.")
    first = reviews.submit(task=task, reviewer=reviewer, data=data)
    second = reviews.submit(task=task, reviewer=reviewer, data=data)
    assert (second.created, second.review.pk) == (False, first.review.pk)
    assert Review.objects.count() == 1
    assert AnnotationVerdict.objects.filter(accepted=False).count() == 2


def test_sft_accept_with_one_response_rejected(sft_project, reviewer, annotator, other_annotator):
    sft_project.overlap = 2
    sft_project.save()
    item = ItemFactory(project=sft_project)
    kept = answer(item, annotator, "Good.", rating=5)
    bad = answer(item, other_annotator, "Wrong.", rating=1)
    reviews.triage(project=sft_project)
    task = reviews.claim_review(membership=member(reviewer, sft_project))
    reviews.submit(task=task, reviewer=reviewer, data=decision("accept", rejected=[str(bad.pk)]))
    assert dict(AnnotationVerdict.objects.values_list("annotation_id", "accepted")) == {
        kept.pk: True,
        bad.pk: False,
    }


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"decision": "maybe"}, {"decision": "choose accept, reject or adjudicate"}),
        ({"decision": "adjudicate"}, {"choice": "adjudicate with a, b, tie or both_bad"}),
        ({"decision": "accept", "rejected": ["999999"]},
         {"rejected": "only this item's annotations can be rejected"}),
    ],
)  # fmt: skip
def test_invalid_reviews_are_refused_and_nothing_is_stored(
    pairwise_project, reviewer, data, errors
):
    judged(pairwise_project, "a", "b")
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    with pytest.raises(InvalidAnnotation) as raised:
        reviews.submit(task=task, reviewer=reviewer, data={"client_id": str(uuid.uuid4()), **data})
    assert raised.value.errors == errors
    assert (Review.objects.count(), ReviewTask.objects.get().status) == (0, "leased")


def test_the_database_refuses_an_adjudication_without_a_label(pairwise_project, reviewer):
    from django.db import IntegrityError, transaction

    item = judged(pairwise_project, "a", "b")
    reviews.triage(project=pairwise_project)
    task = ReviewTask.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(task=task, project=pairwise_project, item=item, reviewer=reviewer,
                              decision="adjudicate")  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(task=task, project=pairwise_project, item=item, reviewer=reviewer,
                              decision="accept", choice="a")  # fmt: skip


# Pages ----------------------------------------------------------------------------------------


def page(client, user, name, project, **kwargs):
    if user is not None:
        client.force_login(user)
    return client.get(reverse(f"labeling:{name}", kwargs={"slug": project.slug, **kwargs}))


@pytest.mark.parametrize(
    ("who", "review", "feedback", "quality"),
    [
        ("anonymous", 302, 302, 302),
        ("outsider", 404, 404, 404),
        ("annotator", 403, 200, 403),
        ("reviewer", 200, 200, 403),
        ("queue_admin", 200, 200, 200),
    ],
)
def test_permission_matrix_of_the_quality_pages(
    client, request, pairwise_project, annotator, who, review, feedback, quality
):
    user = None if who == "anonymous" else request.getfixturevalue(who)
    got = [page(client, user, name, pairwise_project).status_code
           for name in ("review", "feedback", "quality")]  # fmt: skip
    assert got == [review, feedback, quality]


def test_the_review_page_shows_every_annotation_side_by_side(
    client, pairwise_project, reviewer, annotator, other_annotator
):
    item = pairwise_item(pairwise_project, prompt="Is <b>2</b> prime?")
    vote(item, annotator, "a", rationale="A is right", time_spent_ms=4000)
    vote(item, other_annotator, "b", swapped=True, rationale="B <script>")
    response = page(client, reviewer, "review", pairwise_project)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Is &lt;b&gt;2&lt;/b&gt; prime?" in html
    assert "alice" in html
    assert "bob" in html
    assert "A is right" in html
    assert "B &lt;script&gt;" in html
    assert '<strong id="review-agreement">0.50</strong>' in html
    assert "4 s" in html
    assert ReviewTask.objects.get(item=item).reviewer == reviewer


def test_submitting_a_review_over_htmx_answers_the_next_state(client, pairwise_project, reviewer):
    judged(pairwise_project, "a", "b")
    page(client, reviewer, "review", pairwise_project)
    task = ReviewTask.objects.get()
    url = reverse("labeling:review-submit", kwargs={"slug": pairwise_project.slug, "pk": task.pk})
    response = client.post(url, decision("adjudicate", choice="a"), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="review-empty"' in response.content.decode()
    assert Review.objects.get().choice == "a"


def test_another_reviewers_task_is_a_404(client, pairwise_project, reviewer, queue_admin):
    judged(pairwise_project, "a", "b")
    page(client, reviewer, "review", pairwise_project)
    task = ReviewTask.objects.get()
    client.force_login(queue_admin)
    url = reverse("labeling:review-submit", kwargs={"slug": pairwise_project.slug, "pk": task.pk})
    assert client.post(url, decision("accept")).status_code == 404
    assert Review.objects.count() == 0


def test_annotators_see_reviews_of_their_own_work_only(
    client, pairwise_project, reviewer, annotator, other_annotator
):
    item = pairwise_item(pairwise_project)
    vote(item, annotator, "a")
    vote(item, other_annotator, "b")
    reviews.triage(project=pairwise_project)
    task = reviews.claim_review(membership=member(reviewer, pairwise_project))
    data = decision("adjudicate", choice="b", comment="Read rule 3 again.")
    reviews.submit(task=task, reviewer=reviewer, data=data)
    html = page(client, annotator, "feedback", pairwise_project).content.decode()
    assert "rejected; adjudicated: Right response: “B answer to " in html
    assert "Read rule 3 again." in html
    assert "rita" in html
    other = page(client, other_annotator, "feedback", pairwise_project).content.decode()
    assert "accepted; adjudicated: Right response: “B answer to " in other
