"""Reviewers' "guideline unclear" notes and the outcomes per guideline version."""

import uuid

import pytest
from django.urls import reverse

from labeling.models import GuidelineNote, Membership
from labeling.services import guidelines, reviews
from tests.exports.builders import vote
from tests.factories import UserFactory, pairwise_item

pytestmark = pytest.mark.django_db


def review_with_note(project, reviewer, note, choice="a"):
    reviews.triage(project=project)
    membership = Membership.objects.select_related("project").get(user=reviewer, project=project)
    task = reviews.claim_review(membership=membership)
    data = {"client_id": str(uuid.uuid4()), "decision": "adjudicate", "choice": choice,
            "guideline_note": note}  # fmt: skip
    reviews.submit(task=task, reviewer=reviewer, data=data)


def test_notes_are_grouped_by_version_on_the_admins_editor(
    client, pairwise_project, reviewer, queue_admin
):
    v1 = guidelines.publish(project=pairwise_project, author=queue_admin, body="v1", changelog="1")
    first = pairwise_item(pairwise_project, external_id="p-1")
    vote(first, UserFactory(), "a", guideline=v1)
    vote(first, UserFactory(), "b", guideline=v1)
    review_with_note(pairwise_project, reviewer, "What counts as <b>harm</b>?")
    guidelines.publish(project=pairwise_project, author=queue_admin, body="v2", changelog="2")
    second = pairwise_item(pairwise_project, external_id="p-2")
    vote(second, UserFactory(), "a")
    vote(second, UserFactory(), "tie")
    review_with_note(pairwise_project, reviewer, "Ties unclear.")
    assert list(GuidelineNote.objects.values_list("guideline__number", "item_id")) == [
        (2, second.pk),
        (1, first.pk),
    ]
    client.force_login(queue_admin)
    html = client.get(reverse("labeling:guidelines-edit", args=[pairwise_project.slug])).content
    text = html.decode()
    assert text.index("Under v2") < text.index("Ties unclear.") < text.index("Under v1")
    assert "What counts as &lt;b&gt;harm&lt;/b&gt;?" in text


def test_the_guidelines_page_tabulates_outcomes_per_version(
    client, pairwise_project, reviewer, queue_admin, annotator
):
    v1 = guidelines.publish(project=pairwise_project, author=queue_admin, body="v1", changelog="1")
    item = pairwise_item(pairwise_project)
    vote(item, UserFactory(), "a", guideline=v1)
    vote(item, UserFactory(), "b", guideline=v1)
    review_with_note(pairwise_project, reviewer, "", choice="a")
    client.force_login(reviewer)
    html = client.get(reverse("labeling:guidelines", args=[pairwise_project.slug])).content
    assert b"<tr><td>v1</td><td>2</td><td>0.5</td><td>2</td><td>1</td><td>1</td></tr>" in html
    client.force_login(annotator)
    html = client.get(reverse("labeling:guidelines", args=[pairwise_project.slug])).content
    assert b'id="guideline-outcomes"' not in html
    assert GuidelineNote.objects.count() == 0
