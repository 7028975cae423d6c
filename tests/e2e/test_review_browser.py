"""A reviewer adjudicates a pairwise disagreement in a real browser, keyboard only."""

from __future__ import annotations

import pytest

from labeling.models import AnnotationVerdict, Review, Role
from tests.e2e.conftest import STATIC_SCRIPTS
from tests.exports.builders import vote
from tests.factories import MembershipFactory, PairwiseProjectFactory, UserFactory, pairwise_item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def test_a_reviewer_adjudicates_a_pairwise_disagreement_with_the_keyboard(browser_page):
    # given a pair judged A by one annotator and B by another
    project = PairwiseProjectFactory(slug="pairs", name="Pairs", overlap=2)
    reviewer = UserFactory(username="rita")
    MembershipFactory(project=project, user=reviewer, role=Role.REVIEWER)
    item = pairwise_item(project, prompt="Which planet is the largest?")
    vote(item, UserFactory(username="annie"), "a", rationale="A names Jupiter.")
    vote(item, UserFactory(username="bert"), "b", rationale="B is shorter.")
    browser, page = browser_page, browser_page.page
    browser.log_in("rita", PASSWORD)
    # when the reviewer opens the review queue
    browser.goto("/p/pairs/review/")
    assert [browser.statuses.get(path) for path in STATIC_SCRIPTS] == [200, 200]
    assert page.locator("#review-agreement").inner_text() == "0.50"
    assert page.locator("#review-annotations tbody tr").count() == 2
    assert page.locator("#review-annotations td.choice").all_inner_texts() == ["A", "B"]
    # and adjudicates with the keyboard: j (adjudicate), 2 (B), c + comment, Enter
    page.locator("body").press("j")
    page.locator("body").press("2")
    page.keyboard.press("c")
    page.keyboard.type("B is what the guideline asks for.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    # then the queue answers with the next state and the decision is stored
    page.locator("#review-empty").wait_for()
    review = Review.objects.get()
    assert (review.decision, review.choice, review.reviewer_id) == ("adjudicate", "b", reviewer.pk)
    assert review.comment == "B is what the guideline asks for."
    verdicts = AnnotationVerdict.objects.order_by("annotation_id").values_list(
        "accepted", flat=True
    )
    assert list(verdicts) == [False, True]
    browser.screenshot("review-adjudicated")
    assert browser.problems == []
