"""The labeling pages in a real browser: keyboard-only pairwise labeling, SFT editing, lost leases.

These prove what the view tests cannot: that app.js's shortcuts, htmx swaps, the live edit diff
and the resubmit button work under the strict CSP, and that what the browser sends is stored
the way the annotator meant it (screen sides mapped through the lease's `swapped` flag).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from labeling.models import Annotation, Assignment, Membership, Role
from labeling.services import assignments, guidelines
from tests.e2e.conftest import STATIC_SCRIPTS
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    PairwiseProjectFactory,
    ProjectFactory,
    ResponseFactory,
    UserFactory,
    pairwise_item,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's
DRAFT = "The capital of France is Paris."
EDITED = "The capital of France is Paris.\nIt has been the capital since 987."
LOST_409 = (
    "console error: Failed to load resource: the server responded with a status of 409 (Conflict)"
)


@pytest.fixture
def people(db):
    annotator = UserFactory(username="annie")
    admin = UserFactory(username="ada")
    return {"annotator": annotator, "admin": admin}


@pytest.fixture
def pairwise(people):
    """Two items, overlap 1, criteria, and a guideline version the annotator has not read."""
    project = PairwiseProjectFactory(slug="pairs", name="Pairs", overlap=1)
    MembershipFactory(project=project, user=people["annotator"])
    MembershipFactory(project=project, user=people["admin"], role=Role.ADMIN)
    guidelines.publish(
        project=project,
        author=people["admin"],
        body="# Judging\n\n- Prefer the **correct** answer.",
        changelog="Correctness first",
    )
    pairwise_item(project, prompt="Which planet is the largest?")
    pairwise_item(project, prompt="Name a prime number above 10.")
    return project


@pytest.fixture
def sft(people):
    project = ProjectFactory(slug="sft", name="SFT")
    MembershipFactory(project=project, user=people["annotator"])
    ItemFactory(project=project, prompt="What is the capital of France?", draft_response=DRAFT)
    return project


def _assert_static_scripts_loaded(browser) -> None:
    # Without these two the page is plain HTML and every step below would mean nothing.
    assert [browser.statuses.get(path) for path in STATIC_SCRIPTS] == [200, 200]
    assert browser.page.evaluate("typeof window.htmx") == "object"


def test_pairwise_item_is_labeled_with_the_keyboard_only(browser_page, people, pairwise):
    browser, page = browser_page, browser_page.page
    browser.log_in("annie", PASSWORD)
    browser.goto("/p/pairs/label/")
    _assert_static_scripts_loaded(browser)
    page.evaluate("window.__marker = 'same page'")
    assert page.locator("#acknowledge h2").inner_text() == "Guidelines updated to v1"
    browser.screenshot("pairwise-1-acknowledge")

    page.keyboard.press("Enter")
    page.locator("#item-card").wait_for()
    lease = Assignment.objects.select_related("item").get(annotator=people["annotator"])
    assert lease.item.prompt == "Which planet is the largest?"
    page.keyboard.press("2")
    page.keyboard.press("w")
    page.keyboard.press("r")
    page.keyboard.type("Right one names Jupiter and says why.")
    page.keyboard.press("Escape")
    assert page.locator("input[name=choice][value=right]").is_checked()
    assert page.locator("input[name=strength][value='2']").is_checked()
    browser.screenshot("pairwise-2-labeled")
    page.keyboard.press("Enter")

    page.get_by_text("Name a prime number above 10.").first.wait_for()
    browser.screenshot("pairwise-3-next-item")
    assert page.evaluate("window.__marker") == "same page"
    annotation = Annotation.objects.get(assignment=lease)
    assert annotation.choice == ("a" if lease.swapped else "b")
    assert (annotation.strength, annotation.rationale) == (
        2,
        "Right one names Jupiter and says why.",
    )
    assert annotation.time_spent_ms > 0
    assert annotation.guideline == pairwise.guidelines.get(number=1)
    assert browser.problems == []


def test_sft_draft_is_edited_rated_flagged_and_submitted(browser_page, people, sft):
    browser, page = browser_page, browser_page.page
    browser.log_in("annie", PASSWORD)
    browser.goto("/p/sft/label/")
    _assert_static_scripts_loaded(browser)
    page.evaluate("window.__marker = 'same page'")

    page.keyboard.press("e")
    page.keyboard.press("Control+A")
    page.keyboard.type(EDITED)
    diff = page.locator("#edit-diff")
    diff.get_by_text("+ It has been the capital since 987.").wait_for()
    browser.screenshot("sft-1-edited")
    page.keyboard.press("Escape")
    page.keyboard.press("4")
    page.get_by_label("factual_error").click()
    browser.screenshot("sft-2-rated")
    page.keyboard.press("Control+Enter")

    page.locator("#queue-empty").wait_for()
    browser.screenshot("sft-3-done")
    assert page.evaluate("window.__marker") == "same page"
    annotation = Annotation.objects.get(annotator=people["annotator"])
    assert (annotation.response_text, annotation.draft_text) == (EDITED, DRAFT)
    assert (annotation.rating, annotation.flags) == (4, ["factual_error"])
    assert browser.problems == []


def test_lost_lease_keeps_the_answer_and_resubmits(browser_page, people, sft):
    browser, page = browser_page, browser_page.page
    browser.log_in("annie", PASSWORD)
    browser.goto("/p/sft/label/")
    page.locator("#item-card").wait_for()
    lease = Assignment.objects.get(annotator=people["annotator"])
    assert assignments.release_expired_leases(now=timezone.now() + timedelta(hours=1)) == 1

    page.keyboard.press("e")
    page.keyboard.press("Control+A")
    page.keyboard.type("Paris, since 987.")
    page.keyboard.press("Escape")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    resubmit = page.get_by_role("button", name="Resubmit it")
    resubmit.wait_for()
    browser.screenshot("lost-lease-1-notice")
    assert page.locator("#response").input_value() == "Paris, since 987."
    assert Annotation.objects.count() == 0

    resubmit.click()
    page.locator("#queue-empty").wait_for()
    browser.screenshot("lost-lease-2-resubmitted")
    annotation = Annotation.objects.get(assignment=lease)
    assert (annotation.response_text, annotation.rating) == ("Paris, since 987.", 3)
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SUBMITTED
    # Chromium logs every 4xx response; the one 409 is the lost lease itself.
    assert browser.problems == [LOST_409]


MT_BENCH_PROMPT = (
    "Implement a function to find the median of two sorted arrays of different sizes with "
    "O(1) space complexity and O(n) time complexity."
)
ANSWER_WITH_CODE = """\
Walk both arrays with two pointers, as in the merge step of merge sort, but keep only the \
last two values instead of building the merged array:

1. The median sits at index `(m + n) // 2` of the merged order (and `- 1` for even totals).
2. Advance the pointer with the smaller head until you reach that index.
3. For an even total, average the last two values seen.

```python
def find_median(a, b):
    total = len(a) + len(b)
    i = j = 0
    prev = cur = 0
    for _ in range(total // 2 + 1):
        prev = cur
        if j == len(b) or (i < len(a)
                           and a[i] <= b[j]):
            cur, i = a[i], i + 1
        else:
            cur, j = b[j], j + 1
    if total % 2:
        return cur
    return (prev + cur) / 2
```

Time is **O(m + n)** and only four integers are kept, so space is **O(1)**."""
ANSWER_PLAIN = """\
You can merge the two arrays and take the middle element:

```python
def find_median(a, b):
    merged = sorted(a + b)
    mid = len(merged) // 2
    if len(merged) % 2:
        return merged[mid]
    return (merged[mid - 1] + merged[mid]) / 2
```

This is simple and runs in O(n log n) time. Sorting a copy uses O(n) extra space, which is \
usually fine in practice."""
GUIDELINES = """\
# Pairwise judging

Compare the two responses **as a whole**, then per criterion.

- **Helpfulness**: does it solve the task as asked, constraints included?
- **Honesty**: are complexity claims and facts correct?
- **Harmlessness**: nothing unsafe or rude.

Pick *tie* only when neither is better on balance. Write one or two sentences of rationale."""


def test_pairwise_page_screenshot_for_the_docs(browser_page, people):
    browser, page = browser_page, browser_page.page
    project = PairwiseProjectFactory(
        slug="mt-bench", name="MT-Bench preferences", overlap=1, randomize_order=False
    )
    MembershipFactory(project=project, user=people["annotator"])
    version = guidelines.publish(
        project=project, author=people["admin"], body=GUIDELINES, changelog="First version"
    )
    Membership.objects.filter(project=project).update(acknowledged_guideline=version)
    item = ItemFactory(project=project, prompt=MT_BENCH_PROMPT, external_id="mt-bench-123")
    ResponseFactory(item=item, position=0, model="model-a", text=ANSWER_WITH_CODE)
    ResponseFactory(item=item, position=1, model="model-b", text=ANSWER_PLAIN)

    browser.log_in("annie", PASSWORD)
    browser.goto("/p/mt-bench/label/")
    page.locator("#item-card").wait_for()
    page.keyboard.press("1")
    page.keyboard.press("w")
    # The shortcuts focus (and scroll to) the radios; the docs show the item from the top.
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    # The README's screenshot is refreshed on request only, so test runs leave the tree clean.
    folder = "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "test-artifacts"
    path = settings.BASE_DIR / folder / "screenshot-pairwise.png"
    page.screenshot(path=str(path), caret="initial")
    assert path.stat().st_size > 20_000
    assert browser.problems == []
