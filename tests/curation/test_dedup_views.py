"""The dedup page and its actions: roles, decisions, escaping; the `dedup` command's errors."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from curation.models import DedupRun, DuplicateGroup
from labeling.models import Item
from tests.curation.test_dedup import BASE, ONE_WORD_AT_END, item, run

XSS = '<script>alert("x")</script>'


@pytest.fixture
def grouped(sft_project):
    item(sft_project, f"{XSS} {BASE}", "base")
    item(sft_project, f"{XSS} {ONE_WORD_AT_END}", "end")
    item(sft_project, f"{XSS} {ONE_WORD_AT_END}", "end2", content="end2")
    done = run(sft_project)
    return done, done.groups.get(kind=DuplicateGroup.Kind.NEAR)


def page(slug: str) -> str:
    return reverse("curation:dedup", kwargs={"slug": slug})


@pytest.mark.parametrize(
    ("actor", "status"),
    [("queue_admin", 200), ("reviewer", 200), ("annotator", 403), ("outsider", 404)],
)
def test_who_sees_the_page(client, request, grouped, sft_project, actor, status):
    client.force_login(request.getfixturevalue(actor))
    assert client.get(page(sft_project.slug)).status_code == status


def test_anonymous_is_sent_to_log_in(client, sft_project):
    response = client.get(page(sft_project.slug))
    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")


@pytest.mark.parametrize(
    ("actor", "status"),
    [("queue_admin", 302), ("reviewer", 403), ("annotator", 403), ("outsider", 404)],
)
def test_who_may_mark_duplicates(client, request, grouped, sft_project, actor, status):
    _, group = grouped
    client.force_login(request.getfixturevalue(actor))
    end = Item.objects.get(external_id="end")
    url = reverse("curation:dedup-decide", kwargs={"slug": sft_project.slug, "pk": group.pk})
    response = client.post(url, {"action": "duplicate", "item": end.pk})
    end.refresh_from_db()
    assert (response.status_code, end.status) == (
        status,
        "duplicate" if status == 302 else "active",
    )


def test_the_page_escapes_item_text_and_highlights_changed_words(
    client, queue_admin, grouped, sft_project
):
    client.force_login(queue_admin)
    body = client.get(page(sft_project.slug)).content.decode()
    assert XSS not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<mark>tonight</mark>" in body


def test_keep_and_mark_one_member_with_htmx(client, queue_admin, grouped, sft_project):
    _, group = grouped
    client.force_login(queue_admin)
    url = reverse("curation:dedup-decide", kwargs={"slug": sft_project.slug, "pk": group.pk})
    end = Item.objects.get(external_id="end2")
    response = client.post(url, {"action": "duplicate", "item": end.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'id="group-{group.pk}"' in response.content.decode()
    assert Item.objects.get(pk=end.pk).status == "duplicate"
    client.post(url, {"action": "keep", "item": end.pk})
    assert Item.objects.get(pk=end.pk).status == "active"
    assert client.post(url, {"action": "delete", "item": end.pk}).status_code == 400


def test_bulk_keep_oldest(client, queue_admin, grouped, sft_project):
    done, _ = grouped
    client.force_login(queue_admin)
    url = reverse("curation:dedup-keep-oldest", kwargs={"slug": sft_project.slug, "pk": done.pk})
    assert client.post(url).status_code == 302
    assert dict(Item.objects.values_list("external_id", "status")) == {
        "base": "active", "end": "duplicate", "end2": "duplicate",
    }  # fmt: skip


def test_a_group_of_another_project_is_a_404(client, queue_admin, grouped, pairwise_project):
    _, group = grouped
    client.force_login(queue_admin)
    url = reverse("curation:dedup-decide", kwargs={"slug": pairwise_project.slug, "pk": group.pk})
    assert client.post(url, {"action": "keep-oldest"}).status_code == 404


def test_the_button_queues_a_run_and_the_status_stops_polling_when_done(
    client, queue_admin, grouped, sft_project, django_capture_on_commit_callbacks
):
    done, _ = grouped
    client.force_login(queue_admin)
    status = reverse("curation:dedup-run", kwargs={"slug": sft_project.slug, "pk": done.pk})
    assert client.get(status, HTTP_HX_REQUEST="true").status_code == 286
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(reverse("curation:dedup-start", kwargs={"slug": sft_project.slug}))
    queued = DedupRun.objects.get(status="queued")
    assert (queued.trigger, queued.created_by, len(callbacks)) == ("button", queue_admin, 1)


def test_settings_are_validated(client, queue_admin, sft_project):
    client.force_login(queue_admin)
    url = reverse("curation:dedup-settings", kwargs={"slug": sft_project.slug})
    assert client.post(url, {"threshold": 0.2, "mode": "word", "ngram": 3}).status_code == 422
    assert client.post(url, {"threshold": 0.9, "mode": "char", "ngram": 5}).status_code == 302
    config = sft_project.dedup_config
    assert (config.threshold, config.mode, config.ngram) == (0.9, "char", 5)


def test_the_command_runs_and_reports(sft_project, capsys):
    item(sft_project, BASE, "base")
    item(sft_project, ONE_WORD_AT_END, "end")
    call_command("dedup", project=sft_project.slug)
    run = DedupRun.objects.get()
    assert (run.status, run.trigger) == ("succeeded", "command")
    assert capsys.readouterr().out == f"Run {run.pk}: {run.message}\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"project": "nope"}, 'No project with the slug "nope".'),
        ({"project": "sft-demo", "batch_size": 0}, "--batch-size must be at least 1."),
    ],
)
def test_command_errors(sft_project, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("dedup", **options)


def test_command_refuses_while_a_run_is_live(sft_project):
    DedupRun.objects.create(project=sft_project, trigger="button")
    with pytest.raises(CommandError, match="in progress"):
        call_command("dedup", project=sft_project.slug)
