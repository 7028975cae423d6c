"""When reports are computed: the debounce, the one-at-a-time guard, the beat, the command."""

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import timezone

from curation.agreement import services, tasks
from curation.models import AgreementReport, AgreementState
from tests.curation.agreement_builders import vote
from tests.factories import PairwiseProjectFactory, UserFactory, pairwise_item


@pytest.fixture
def project(db):
    project = PairwiseProjectFactory(slug="runs", overlap=2)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for choice in ("a", "b"):
        item = pairwise_item(project)
        vote(project, item, alice, choice="a", time_spent_ms=1200)
        vote(project, item, bob, choice=choice, swapped=True, time_spent_ms=800)
    return project


def test_a_second_run_within_a_minute_is_skipped(project):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first = services.refresh(project=project)
        clock.shift(timedelta(seconds=59))
        assert services.refresh(project=project) is None
        clock.shift(timedelta(seconds=2))
        third = services.refresh(project=project)

    assert AgreementReport.objects.filter(project=project).count() == 2
    assert first.pk != third.pk


def test_never_two_at_once_even_when_forced(project):
    AgreementState.objects.create(project=project, running_since=timezone.now())

    assert services.refresh(project=project, force=True) is None
    assert not AgreementReport.objects.exists()


def test_a_run_that_died_long_ago_no_longer_blocks(project):
    AgreementState.objects.create(
        project=project, running_since=timezone.now() - timedelta(minutes=16)
    )

    assert services.refresh(project=project, force=True) is not None
    state = AgreementState.objects.get(project=project)
    assert state.running_since is None
    assert state.last_annotation_id == project.annotations.order_by("-pk").first().pk


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_let_exactly_one_run():
    project = PairwiseProjectFactory(slug="race")
    AgreementState.objects.create(project=project)
    barrier, results = threading.Barrier(2), []

    def claim():
        try:
            barrier.wait()
            results.append(services._claim(project.pk, force=True))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, True]


def test_the_beat_finds_projects_with_newer_annotations(project):
    idle = PairwiseProjectFactory(slug="idle")
    assert services.due_projects() == [project.pk]

    with time_machine.travel(timezone.now(), tick=False) as clock:
        services.refresh(project=project)
        assert services.due_projects() == []
        vote(project, pairwise_item(project), UserFactory(username="carol"), choice="tie")
        assert services.due_projects() == []  # ran less than a minute ago
        clock.shift(timedelta(seconds=61))
        assert services.due_projects() == [project.pk]
        AgreementState.objects.filter(project=project).update(running_since=timezone.now())
        assert services.due_projects() == []
    assert idle.pk not in services.due_projects()


def test_the_beat_takes_up_a_project_whose_run_died(project):
    dead = timezone.now() - services.STALE_AFTER - timedelta(seconds=1)
    AgreementState.objects.create(project=project, running_since=dead, started_at=dead)

    assert services.due_projects() == [project.pk]


def test_a_failed_run_frees_the_guard_and_does_not_debounce(project, monkeypatch):
    def failing_store(*args, **kwargs):
        raise OperationalError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(services, "_store", failing_store)
        with pytest.raises(OperationalError):
            services.refresh(project=project)

    state = AgreementState.objects.get(project=project)
    assert (state.running_since, state.started_at) == (None, None)
    assert state.last_error == "OperationalError: the database went away"
    assert services.due_projects() == [project.pk]
    assert services.refresh(project=project) is not None  # the retry runs at once


def test_the_refresh_task_stores_a_report(project):
    report_id = tasks.refresh_agreement(project.pk)

    stored = AgreementReport.objects.get(pk=report_id)
    assert (stored.annotations, stored.data["overall"]["alpha_nominal"]) == (4, 0.0)
    assert tasks.refresh_agreement(project.pk) is None  # debounced
    assert tasks.refresh_agreement(10**9) is None  # no such project


def test_the_command_prints_text(project):
    out = StringIO()

    call_command("agreement", project="runs", stdout=out)

    assert out.getvalue().splitlines() == [
        "4 annotations on 2 items by 2 annotators (pairwise)",
        "all: percent_agreement 0.500, alpha_nominal 0.000, alpha_interval 0.000,"
        " fleiss_kappa -0.333, tie_rate 0.000, both_bad_rate 0.000",
        "no version: percent_agreement 0.500, alpha_nominal 0.000, alpha_interval 0.000,"
        " fleiss_kappa -0.333, tie_rate 0.000, both_bad_rate 0.000",
        "  alice: 2 items, majority agreement 0.500, median 1200 ms, left 2 right 0 p 0.5000",
        "  bob: 2 items, majority agreement 0.500, median 800 ms, left 1 right 1 p 1.0000",
    ]


def test_the_command_prints_json_and_ignores_the_debounce(project):
    services.refresh(project=project)
    out = StringIO()

    call_command("agreement", project="runs", json=True, stdout=out)

    data = json.loads(out.getvalue())
    assert data == AgreementReport.objects.filter(project=project).first().data
    assert data["overall"]["alpha_nominal"] == 0.0  # o_aa=2, o_ab=o_ba=1: 1 - 3 * 2 / 6
    assert AgreementReport.objects.filter(project=project).count() == 2


def test_the_command_rejects_an_unknown_project(db):
    with pytest.raises(CommandError, match="no project with the slug 'nope'"):
        call_command("agreement", project="nope")
