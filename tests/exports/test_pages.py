"""The Export page, preview, job page and downloads: admins only, errors by field."""

import pytest
from django.urls import reverse

from exports.jobs import export_directory, run_job, start_export
from exports.models import Export
from exports.options import ExportOptions
from tests.exports.job_data import KEPT

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(judged, data_dir, queue_admin):
    export = start_export(
        project=judged, options=ExportOptions(format="dpo"), created_by=queue_admin
    )
    run_job(export_id=export.pk)
    return Export.objects.get(pk=export.pk)


def _urls(export):
    slug, pk = export.project.slug, export.pk
    return [
        reverse("exports:export", args=[slug]),
        reverse("exports:preview", args=[slug]) + "?format=dpo",
        reverse("exports:detail", args=[slug, pk]),
        reverse("exports:download", args=[slug, pk, "train.jsonl"]),
    ]


@pytest.mark.parametrize(
    ("actor", "status"), [("reviewer", 403), ("annotator", 403), ("outsider", 404)]
)
def test_only_admins_reach_the_export_pages(client, finished, request, actor, status):
    client.force_login(request.getfixturevalue(actor))
    assert [client.get(url).status_code for url in _urls(finished)] == [status] * 4
    response = client.post(
        reverse("exports:export", args=[finished.project.slug]), {"format": "dpo"}
    )
    assert response.status_code == status
    assert Export.objects.count() == 1


def test_anonymous_visitors_are_sent_to_log_in(client, finished):
    for url in _urls(finished):
        response = client.get(url)
        assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/")


def test_the_page_lists_past_exports_and_admins_see_the_tab(client, finished, queue_admin):
    client.force_login(queue_admin)
    response = client.get(reverse("exports:export", args=[finished.project.slug]))
    page = response.content.decode()
    assert response.status_code == 200
    assert f'href="/p/{finished.project.slug}/export/">Export</a>' in page
    assert f'href="/p/{finished.project.slug}/export/{finished.pk}/"' in page
    assert finished.files["train.jsonl"]["sha256"][:16] in page
    assert "train 8" in page
    assert "ada" in page


def test_running_an_export_queues_a_job_and_shows_its_page(
    client, judged, data_dir, queue_admin, django_capture_on_commit_callbacks
):
    client.force_login(queue_admin)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("exports:export", args=[judged.slug]),
            {"format": "rm", "min_agreement": "0.6", "splits": "test=0.2"},
        )
    export = Export.objects.get()
    assert response["Location"] == reverse("exports:detail", args=[judged.slug, export.pk])
    assert (export.status, export.format, export.options["splits"]) == (
        "queued",
        "rm",
        [["test", 0.2]],
    )
    assert len(callbacks) == 1


def test_form_errors_name_the_field(client, judged, data_dir, queue_admin):
    client.force_login(queue_admin)
    url = reverse("exports:export", args=[judged.slug])
    response = client.post(url, {"format": "dpo", "min_agreement": "2", "splits": "train=0.5"})
    assert response.status_code == 422
    assert response.context["form"].errors == {
        "min_agreement": ["Ensure this value is less than or equal to 1."],
        "splits": ['"train=0.5": name a split like test=0.1 (lowercase, not "train")'],
    }
    response = client.post(url, {"format": "dpo", "per_annotator": "on", "min_votes": "3"})
    assert response.context["form"].errors == {
        "min_votes": ["--min-votes does not apply with --per-annotator"]
    }
    assert Export.objects.count() == 0


def test_the_preview_shows_what_each_rule_keeps_and_drops(client, judged, queue_admin):
    client.force_login(queue_admin)
    url = reverse("exports:preview", args=[judged.slug])
    response = client.get(url, {"format": "dpo"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.context["preview"].counts == {"train": KEPT}
    assert response.context["preview"].dropped == {
        "annotations": {"item_status": 0, "non_decisive": 2},
        "items": {"missing_responses": 0, "min_votes": 0, "no_majority": 2, "min_agreement": 0},
    }
    page = response.content.decode()
    assert "<strong>8</strong> rows from <strong>20</strong> annotations" in page
    assert "<html" not in page


def test_the_live_preview_is_off_for_large_projects(client, judged, queue_admin, monkeypatch):
    from exports import views

    monkeypatch.setattr(views, "LIVE_PREVIEW_LIMIT", 19)  # the project has 20 annotations
    client.force_login(queue_admin)
    url = reverse("exports:preview", args=[judged.slug])
    response = client.get(url, {"format": "dpo"}, headers={"HX-Request": "true"})
    assert (response.status_code, response.context["preview"]) == (200, None)
    assert "This project has 20 annotations: the live preview stops at 19" in (
        response.content.decode()
    )


def test_a_preview_with_bad_options_says_which_field(client, judged, queue_admin):
    client.force_login(queue_admin)
    url = reverse("exports:preview", args=[judged.slug])
    response = client.get(url, {"format": "dpo", "style": "standard", "since": "yesterday"})
    assert response.status_code == 422
    assert response.context["form"].errors == {"since": ["Enter a valid date/time."]}
    assert "<strong>since</strong>: Enter a valid date/time." in response.content.decode()


def test_the_job_page_stops_polling_once_finished(client, finished, queue_admin):
    client.force_login(queue_admin)
    url = reverse("exports:detail", args=[finished.project.slug, finished.pk])
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286
    page = client.get(url).content.decode()
    assert finished.files["train.jsonl"]["sha256"] in page
    assert "20 of 20 annotations read · 8 rows written" in page


def test_a_queued_job_page_keeps_polling(client, judged, data_dir, queue_admin):
    export = start_export(project=judged, options=ExportOptions(format="dpo"), created_by=None)
    client.force_login(queue_admin)
    url = reverse("exports:detail", args=[judged.slug, export.pk])
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()


@pytest.mark.parametrize("name", ["train.jsonl", "manifest.json", "README.md"])
def test_a_download_serves_exactly_the_files_bytes(client, finished, queue_admin, name):
    client.force_login(queue_admin)
    response = client.get(
        reverse("exports:download", args=[finished.project.slug, finished.pk, name])
    )
    assert response.status_code == 200
    assert (
        b"".join(response.streaming_content) == (export_directory(finished.pk) / name).read_bytes()
    )
    assert response["Content-Disposition"] == (
        f'attachment; filename="pair-demo-export-{finished.pk}-{name}"'
    )


@pytest.mark.parametrize("name", ["test.jsonl", "..", "secret_key", "%2e%2e%2fsecret_key"])
def test_only_files_the_job_wrote_are_served(client, finished, queue_admin, name):
    client.force_login(queue_admin)
    url = f"/p/{finished.project.slug}/export/{finished.pk}/files/{name}"
    assert client.get(url).status_code == 404
