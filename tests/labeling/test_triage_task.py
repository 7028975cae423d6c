"""The periodic review triage (labeling.tasks) and its page-load fallback."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from labeling import tasks
from labeling.models import Annotation, Project, ReviewTask
from labeling.services import reviews
from tests.conftest import require_postgres
from tests.exports.builders import vote
from tests.factories import PairwiseProjectFactory, UserFactory, pairwise_item

pytestmark = pytest.mark.django_db

LATER = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)  # an hour after builders' at(0)


def judged(project, *choices, minutes=0):
    item = pairwise_item(project)
    for choice in choices:
        vote(item, UserFactory(), choice, minutes=minutes)
    return item


def marker(project):
    return Project.objects.get(pk=project.pk).review_triaged_through


@time_machine.travel(LATER, tick=False)
def test_the_beat_task_queues_only_projects_with_new_annotations(pairwise_project, monkeypatch):
    # given a project with a finished split item, and one with nothing
    judged(pairwise_project, "a", "b")
    PairwiseProjectFactory()
    queued = []
    monkeypatch.setattr(tasks.triage_project, "delay", queued.append)
    # when the beat task runs
    assert tasks.triage_reviews() == 1
    # then only the first project is queued
    assert queued == [pairwise_project.pk]


@time_machine.travel(LATER, tick=False)
def test_triaging_a_project_twice_makes_one_task_per_item_and_moves_the_marker(
    pairwise_project,
):
    split = judged(pairwise_project, "a", "b")
    agreed = judged(pairwise_project, "a", "a")
    last = Annotation.objects.order_by("-pk").first()
    tasks.triage_project(pairwise_project.pk)
    tasks.triage_project(pairwise_project.pk)
    assert dict(ReviewTask.objects.values_list("item_id", "status")) == {
        split.pk: "open", agreed.pk: "not_needed",
    }  # fmt: skip
    assert marker(pairwise_project) == last.pk
    assert reviews.projects_to_triage() == []


@time_machine.travel(LATER, tick=False)
def test_recent_annotations_stay_beyond_the_marker_until_they_settle(pairwise_project):
    # given one old vote and, a minute ago, the vote that finished its item
    item = pairwise_item(pairwise_project)
    old = vote(item, UserFactory(), "a", minutes=0)
    vote(item, UserFactory(), "b", minutes=59)
    # when triaged: the item is, but the marker stops at the settled (old) vote
    assert reviews.triage_recent(project=pairwise_project) is True
    assert ReviewTask.objects.get().item_id == item.pk
    assert marker(pairwise_project) == old.pk
    assert reviews.projects_to_triage() == [pairwise_project.pk]
    # and five minutes later the marker passes it
    with time_machine.travel(LATER + timedelta(minutes=5), tick=False):
        reviews.triage_recent(project=pairwise_project)
    assert reviews.projects_to_triage() == []


@time_machine.travel(LATER, tick=False)
def test_a_big_increment_is_done_in_batches_and_requeued(pairwise_project, monkeypatch):
    items = [judged(pairwise_project, "a", "b") for _ in range(3)]
    queued = []
    monkeypatch.setattr(tasks.triage_project, "delay", queued.append)
    monkeypatch.setattr(reviews.triage_recent, "__kwdefaults__", {"limit": 2})
    tasks.triage_project(pairwise_project.pk)
    assert (ReviewTask.objects.count(), queued, marker(pairwise_project)) == (
        2, [pairwise_project.pk], 0,
    )  # fmt: skip
    tasks.triage_project(pairwise_project.pk)
    assert sorted(ReviewTask.objects.values_list("item_id", flat=True)) == [i.pk for i in items]
    assert queued == [pairwise_project.pk]


def test_a_missing_project_is_logged_and_skipped(db, caplog):
    tasks.triage_project(987654)
    assert [r.message for r in caplog.records] == ["triage.project_missing"]


@time_machine.travel(LATER, tick=False)
def test_the_review_page_triages_as_a_fallback(client, pairwise_project, reviewer):
    item = judged(pairwise_project, "a", "b")
    client.force_login(reviewer)
    client.get(reverse("labeling:review", args=[pairwise_project.slug]))
    assert ReviewTask.objects.get().item_id == item.pk
    assert ReviewTask.objects.get().reviewer == reviewer


@time_machine.travel(LATER, tick=False)
def test_lowering_the_overlap_makes_triage_look_at_everything_again(
    client, pairwise_project, queue_admin
):
    item = pairwise_item(pairwise_project)
    vote(item, UserFactory(), "a", minutes=0)
    reviews.triage_recent(project=pairwise_project)
    assert (ReviewTask.objects.count(), marker(pairwise_project) > 0) == (0, True)
    client.force_login(queue_admin)
    settings_url = reverse("labeling:settings", args=[pairwise_project.slug])
    form = client.get(settings_url).context["form"]
    data = {**{k: v for k, v in form.initial.items() if v is not None}, "overlap": 1}
    data["flags"] = ", ".join(data.get("flags") or [])
    data["criteria"] = ", ".join(data.get("criteria") or [])
    assert client.post(settings_url, data).status_code == 302
    assert marker(pairwise_project) == 0
    reviews.triage_recent(project=Project.objects.get(pk=pairwise_project.pk))
    assert ReviewTask.objects.get().item_id == item.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_triages_make_one_task_per_item():
    require_postgres()
    project = PairwiseProjectFactory()
    for _ in range(20):
        judged(project, "a", "b")
    errors = []

    def run():
        try:
            tasks.triage_project(project.pk)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ReviewTask.objects.filter(project=project).count() == 20
