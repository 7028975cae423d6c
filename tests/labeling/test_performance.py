"""Annotator performance: exact numbers on hand-built data, the queries it costs, the pages."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.urls import reverse

from labeling import performance
from labeling.models import (
    Annotation,
    AnnotationVerdict,
    Assignment,
    Review,
    ReviewTask,
    Role,
)
from labeling.services import gold
from tests.exports.builders import at, vote
from tests.factories import MembershipFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # builders' at(0) is 2025-03-01 12:00 UTC
DAY = 24 * 60


def gold_answer(item, user, choice, *, time_spent_ms, minutes):
    lease = Assignment.objects.create(
        project=item.project, item=item, annotator=user, gold=True, status="submitted",
        expires_at=at(minutes + 10),
    )  # fmt: skip
    annotation = Annotation.objects.create(
        assignment=lease, project=item.project, item=item, annotator=user, choice=choice,
        strength=2 if choice in "ab" else None, time_spent_ms=time_spent_ms,
    )  # fmt: skip
    Annotation.objects.filter(pk=annotation.pk).update(created_at=at(minutes))
    return annotation


def review(annotations, accepted, reviewer):
    item = annotations[0].item
    task = ReviewTask.objects.create(project=item.project, item=item, status="done")
    decision = Review.objects.create(
        task=task, project=item.project, item=item, reviewer=reviewer, decision="accept"
    )
    for annotation, ok in zip(annotations, accepted, strict=True):
        AnnotationVerdict.objects.create(review=decision, annotation=annotation, accepted=ok)


def lease(project, user, status):
    item = pairwise_item(project)
    return Assignment.objects.create(
        project=project, item=item, annotator=user, status=status, expires_at=at(10)
    )


@pytest.fixture
def work(pairwise_project, annotator, other_annotator, reviewer, queue_admin):
    """alice: 3 votes + 1 right gold answer, 1 skip, 1 lapsed lease, reviews 1 of 2 accepted;
    bob: 1 vote without a time, 1 wrong gold answer; carol: nothing yet."""
    carol = UserFactory(username="carol")
    MembershipFactory(project=pairwise_project, user=carol, role=Role.ANNOTATOR)
    first, second, third = (pairwise_item(pairwise_project) for _ in range(3))
    a1 = vote(first, annotator, "a", time_spent_ms=4000, minutes=0)
    b1 = vote(first, other_annotator, "b", time_spent_ms=0, minutes=5)
    a2 = vote(second, annotator, "a", time_spent_ms=10000, minutes=DAY)
    vote(third, annotator, "b", time_spent_ms=6000, minutes=DAY + 5)
    [gold_item] = [pairwise_item(pairwise_project)]
    gold.mark_gold(item=gold_item, created_by=queue_admin, choice="b")
    gold_answer(gold_item, annotator, "b", time_spent_ms=2000, minutes=2 * DAY)
    gold_answer(gold_item, other_annotator, "a", time_spent_ms=3000, minutes=2 * DAY)
    lease(pairwise_project, annotator, "skipped")
    lease(pairwise_project, annotator, "expired")
    review([a1, b1], [True, False], reviewer)
    review([a2], [False], reviewer)
    return pairwise_project


def by_name(stats):
    return {s.username: s for s in stats}


@time_machine.travel(NOW, tick=False)
def test_every_number_of_each_annotator(work, django_assert_num_queries):
    with django_assert_num_queries(5):
        stats = by_name(performance.project_performance(work))
    assert list(stats) == ["alice", "bob", "carol"]  # admin and reviewer did no labeling
    alice, bob, carol = stats["alice"], stats["bob"], stats["carol"]
    assert (alice.done, bob.done, carol.done) == (4, 2, 0)
    # alice: 2000, 4000, 6000, 10000 ms -> 5.0 s; bob's vote without a time is left out
    assert (alice.median_seconds, bob.median_seconds, carol.median_seconds) == (5.0, 3.0, None)
    assert (alice.gold_correct, alice.gold_answered, alice.gold_accuracy) == (1, 1, 1.0)
    assert (bob.gold_correct, bob.gold_answered, bob.gold_accuracy) == (0, 1, 0.0)
    assert (alice.accepted, alice.reviewed, alice.acceptance_rate) == (1, 2, 0.5)
    assert (bob.accepted, bob.reviewed, bob.acceptance_rate) == (0, 1, 0.0)
    # 1 skipped of 4 submitted + 1 skipped; the lapsed lease counts in neither
    assert (alice.skipped, alice.finished, alice.skip_rate) == (1, 5, 0.2)
    assert (bob.skip_rate, carol.skip_rate, carol.gold_accuracy) == (0.0, None, None)
    assert alice.per_day == {date(2025, 3, 1): 1, date(2025, 3, 2): 2, date(2025, 3, 3): 1}
    assert bob.per_day == {date(2025, 3, 1): 1, date(2025, 3, 3): 1}
    assert (alice.recent, carol.per_day) == (4, {})


@time_machine.travel(NOW, tick=False)
def test_daily_totals_cover_the_last_thirty_days(work):
    totals = performance.daily_totals(performance.project_performance(work))
    assert len(totals) == 30
    assert totals[0] == (date(2025, 2, 2), 0)
    assert totals[-3:] == [(date(2025, 3, 1), 2), (date(2025, 3, 2), 2), (date(2025, 3, 3), 2)]


@time_machine.travel(NOW, tick=False)
def test_one_annotators_numbers(work, annotator):
    [alice] = performance.project_performance(work, user_id=annotator.pk)
    assert (alice.username, alice.done, alice.skip_rate) == ("alice", 4, 0.2)


@time_machine.travel(NOW, tick=False)
def test_days_before_the_window_count_in_done_but_not_per_day(pairwise_project, annotator):
    item = pairwise_item(pairwise_project)
    vote(item, annotator, "a", minutes=-40 * DAY)
    [alice] = [s for s in performance.project_performance(pairwise_project) if s.done]
    assert (alice.done, alice.recent) == (1, 0)


# Pages ----------------------------------------------------------------------------------------


def url(name, project, **kwargs):
    return reverse(f"labeling:{name}", kwargs={"slug": project.slug, **kwargs})


@pytest.mark.parametrize(
    ("who", "overview", "someone", "mine"),
    [
        ("anonymous", 302, 302, 302),
        ("outsider", 404, 404, 404),
        ("annotator", 403, 403, 200),
        ("reviewer", 403, 403, 200),
        ("queue_admin", 200, 200, 200),
    ],
)
def test_permission_matrix_of_the_performance_pages(
    client, request, pairwise_project, annotator, other_annotator, who, overview, someone, mine
):
    user = None if who == "anonymous" else request.getfixturevalue(who)
    if user is not None:
        client.force_login(user)
    got = [
        client.get(url("performance", pairwise_project)).status_code,
        client.get(
            url("performance-annotator", pairwise_project, user_id=other_annotator.pk)
        ).status_code,
        client.get(url("my-performance", pairwise_project)).status_code,
    ]
    assert got == [overview, someone, mine]


def test_an_admin_cannot_open_someone_outside_the_project(client, pairwise_project, queue_admin,
                                                          outsider):  # fmt: skip
    client.force_login(queue_admin)
    address = url("performance-annotator", pairwise_project, user_id=outsider.pk)
    assert client.get(address).status_code == 404


@time_machine.travel(NOW, tick=False)
def test_the_admin_page_shows_the_table_and_escaped_charts(client, work, queue_admin):
    UserFactory(username="<b>eve</b>")
    MembershipFactory(project=work, user=UserFactory(username="<b>eve</b>"), role=Role.ANNOTATOR)
    client.force_login(queue_admin)
    html = client.get(url("performance", work)).content.decode()
    assert '<td class="num">4</td>' in html
    assert "5.0 s" in html
    assert '50% <span class="muted">(1/2)</span>' in html
    assert '20% <span class="muted">(1/5)</span>' in html
    assert "&lt;b&gt;eve&lt;/b&gt;" in html
    assert "<b>eve" not in html
    assert html.count('<svg class="chart"') == 2
    assert "<title>alice: 4</title>" in html
    assert "<title>2025-03-02: 2</title>" in html
    assert reverse("curation:agreement", args=[work.slug]) in html


@time_machine.travel(NOW, tick=False)
def test_an_annotator_sees_their_own_days(client, work, annotator):
    client.force_login(annotator)
    html = client.get(url("my-performance", work)).content.decode()
    assert "Your numbers" in html
    assert '<td>2025-03-02</td><td class="num">2</td>' in html
    assert "bob" not in html
