"""The active time that app.js stamps on a submit: visible and touched within a minute only.

Playwright's fake clock stands in for the annotator's wall time: the test jumps minutes ahead
while the tab is hidden and while nobody touches the page, and checks what the server stored.
"""

from __future__ import annotations

import pytest

from labeling.models import Annotation, Role
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's
SET_VISIBILITY = """state => {
  Object.defineProperty(document, "visibilityState", {value: state, configurable: true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_hidden_and_idle_time_is_not_counted(browser_page):
    # given an SFT item and its annotator on the labeling page, under a fake clock
    project = ProjectFactory(slug="sft", name="SFT")
    MembershipFactory(project=project, user=UserFactory(username="annie"), role=Role.ANNOTATOR)
    ItemFactory(project=project, prompt="What is the capital of France?", draft_response="Paris.")
    browser, page = browser_page, browser_page.page
    page.clock.install()
    browser.log_in("annie", PASSWORD)
    browser.goto("/p/sft/label/")
    page.locator("#item-card").wait_for()
    # when they work 10 s, hide the tab for 5 min, come back and then sit idle for 2 min
    page.keyboard.press("Shift")
    page.clock.run_for(10_000)
    page.evaluate(SET_VISIBILITY, "hidden")
    page.clock.run_for(300_000)
    page.evaluate(SET_VISIBILITY, "visible")
    page.clock.run_for(120_000)
    page.keyboard.press("4")
    page.keyboard.press("Control+Enter")
    page.locator("#queue-empty").wait_for()
    # then 10 s + the minute after coming back count (plus the real second or two the page
    # took to load), not the 5 hidden minutes nor the second idle minute
    spent = Annotation.objects.get().time_spent_ms
    assert 70_000 <= spent <= 73_000, spent
    assert browser.problems == []
