"""The review, gold and feedback endpoints: who may call what, and what they answer."""

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import GoldLabel, Item, Review, ReviewTask
from tests.exports.builders import vote
from tests.factories import UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def judged(project, *choices, voters=None):
    item = pairwise_item(project)
    for choice, voter in zip(choices, voters or [UserFactory() for _ in choices], strict=True):
        vote(item, voter, choice)
    return item


def url(name, project, **kwargs):
    return reverse(f"api:{name}", kwargs={"slug": project.slug, **kwargs})


ENDPOINTS = [
    ("get", "review-list", {}),
    ("post", "review-claim", {}),
    ("get", "gold-list", {}),
    ("post", "gold-list", {}),
    ("get", "feedback-list", {}),
]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", [401, 401, 401, 401, 401]),
        ("outsider", [404, 404, 404, 404, 404]),
        ("annotator", [403, 403, 403, 403, 200]),
        ("reviewer", [200, 204, 403, 403, 200]),
        ("queue_admin", [200, 204, 200, 400, 200]),
    ],
)
def test_permission_matrix(api, request, pairwise_project, annotator, who, expected):
    if who != "anonymous":
        api.force_authenticate(request.getfixturevalue(who))
    got = [
        getattr(api, method)(url(name, pairwise_project, **kwargs), format="json").status_code
        for method, name, kwargs in ENDPOINTS
    ]
    assert got == expected


def test_a_reviewer_claims_over_the_api_and_submits_once(api, pairwise_project, reviewer):
    # given a split item, triaged by the claim itself
    item = judged(pairwise_project, "a", "b")
    api.force_authenticate(reviewer)
    claimed = api.post(url("review-claim", pairwise_project))
    assert claimed.status_code == 200
    body = claimed.json()
    assert (body["item"]["id"], body["reasons"]) == (item.pk, ["disagreement"])
    assert [r["position"] for r in body["item"]["responses"]] == [0, 1]
    assert [a["choice"] for a in body["annotations"]] == ["a", "b"]
    task_id = body["id"]
    beat = api.post(url("review-heartbeat", pairwise_project, pk=task_id))
    assert beat.status_code == 200
    # when the decision is submitted twice with one client id
    data = {"client_id": str(uuid.uuid4()), "decision": "adjudicate", "choice": "b",
            "comment": "B is right."}  # fmt: skip
    first = api.post(url("review-submit", pairwise_project, pk=task_id), data, format="json")
    again = api.post(url("review-submit", pairwise_project, pk=task_id), data, format="json")
    # then one review is stored and the repeat answers it
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["review"]["id"] == again.json()["review"]["id"] == Review.objects.get().pk
    assert [v["accepted"] for v in first.json()["review"]["verdicts"]] == [False, True]
    listed = api.get(url("review-list", pairwise_project)).json()
    assert [(r["item"], r["decision"], r["choice"]) for r in listed["results"]] == [
        (item.pk, "adjudicate", "b")
    ]
    assert api.post(url("review-claim", pairwise_project)).status_code == 204


def test_invalid_and_foreign_review_submits(api, pairwise_project, reviewer, queue_admin):
    judged(pairwise_project, "a", "b")
    api.force_authenticate(reviewer)
    task_id = api.post(url("review-claim", pairwise_project)).json()["id"]
    submit = url("review-submit", pairwise_project, pk=task_id)
    bad = api.post(submit, {"client_id": str(uuid.uuid4()), "decision": "maybe"}, format="json")
    assert (bad.status_code, bad.json()) == (
        400, {"errors": {"decision": "choose accept, reject or adjudicate"}},
    )  # fmt: skip
    api.force_authenticate(queue_admin)
    data = {"client_id": str(uuid.uuid4()), "decision": "accept"}
    assert api.post(submit, data, format="json").status_code == 404
    assert Review.objects.count() == 0


def test_a_lapsed_review_lease_answers_409(api, pairwise_project, reviewer):
    judged(pairwise_project, "a", "b")
    api.force_authenticate(reviewer)
    task_id = api.post(url("review-claim", pairwise_project)).json()["id"]
    ReviewTask.objects.filter(pk=task_id).update(status="open", expires_at=None)
    data = {"client_id": str(uuid.uuid4()), "decision": "accept"}
    answer = api.post(url("review-submit", pairwise_project, pk=task_id), data, format="json")
    assert (answer.status_code, answer.json()) == (
        409,
        {"detail": "This review's lease has lapsed."},
    )
    assert api.post(url("review-heartbeat", pairwise_project, pk=task_id)).status_code == 409


def test_admins_mark_list_and_demote_gold(api, pairwise_project, queue_admin):
    item = pairwise_item(pairwise_project, external_id="p-1")
    api.force_authenticate(queue_admin)
    expected = {"item": item.pk, "choice": "b", "explanation": "Rule 2."}
    marked = api.post(url("gold-list", pairwise_project), expected, format="json")
    assert marked.status_code == 201
    assert (marked.json()["external_id"], marked.json()["choice"]) == ("p-1", "b")
    assert Item.objects.get(pk=item.pk).status == "gold"
    listed = api.get(url("gold-list", pairwise_project)).json()
    assert [(g["item"], g["choice"], g["created_by"]) for g in listed["results"]] == [
        (item.pk, "b", "ada")
    ]
    assert api.get(url("gold-detail", pairwise_project, item=item.pk)).json()["choice"] == "b"
    assert api.delete(url("gold-detail", pairwise_project, item=item.pk)).status_code == 204
    assert Item.objects.get(pk=item.pk).status == "active"
    assert GoldLabel.objects.count() == 0
    assert api.delete(url("gold-detail", pairwise_project, item=item.pk)).status_code == 404


def test_marking_gold_refuses_labels_that_do_not_fit(
    api, pairwise_project, sft_project, queue_admin
):
    pair, sft = pairwise_item(pairwise_project), Item.objects.none()
    api.force_authenticate(queue_admin)
    refused = api.post(url("gold-list", pairwise_project), {"item": pair.pk}, format="json")
    assert refused.json() == {"detail": "A pairwise gold item needs the expected choice."}
    other = pairwise_item(sft_project)
    foreign = api.post(url("gold-list", pairwise_project), {"item": other.pk, "choice": "a"},
                       format="json")  # fmt: skip
    assert (refused.status_code, foreign.status_code, sft.count()) == (400, 404, 0)
    assert GoldLabel.objects.count() == 0


def test_reviewers_cannot_demote_gold(api, pairwise_project, reviewer, queue_admin):
    item = pairwise_item(pairwise_project)
    api.force_authenticate(queue_admin)
    api.post(url("gold-list", pairwise_project), {"item": item.pk, "choice": "a"}, format="json")
    api.force_authenticate(reviewer)
    assert api.delete(url("gold-detail", pairwise_project, item=item.pk)).status_code == 403
    assert Item.objects.get(pk=item.pk).status == "gold"


def test_annotators_list_their_own_feedback_only(
    api, pairwise_project, reviewer, annotator, other_annotator
):
    item = judged(pairwise_project, "a", "b", voters=[annotator, other_annotator])
    api.force_authenticate(reviewer)
    task_id = api.post(url("review-claim", pairwise_project)).json()["id"]
    data = {"client_id": str(uuid.uuid4()), "decision": "adjudicate", "choice": "b",
            "comment": "See rule 3."}  # fmt: skip
    api.post(url("review-submit", pairwise_project, pk=task_id), data, format="json")
    api.force_authenticate(annotator)
    mine = api.get(url("feedback-list", pairwise_project)).json()["results"]
    assert [(f["item"], f["accepted"], f["decision"], f["adjudicated_choice"], f["comment"],
             f["reviewer"]) for f in mine] == [
        (item.pk, False, "adjudicate", "b", "See rule 3.", "rita")
    ]  # fmt: skip
    api.force_authenticate(other_annotator)
    theirs = api.get(url("feedback-list", pairwise_project)).json()["results"]
    assert [f["accepted"] for f in theirs] == [True]
