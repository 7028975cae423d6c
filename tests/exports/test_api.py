"""The export API: admins create, list, poll and download; fields named in every error."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from exports.jobs import export_directory, run_job, start_export
from exports.models import Export
from exports.options import ExportOptions

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def finished(judged, data_dir, queue_admin):
    options = ExportOptions(format="dpo", splits=(("test", 0.5),))
    export = start_export(project=judged, options=options, created_by=queue_admin)
    run_job(export_id=export.pk)
    return Export.objects.get(pk=export.pk)


def _list_url(slug="pair-demo"):
    return reverse("exports-api:export-list", args=[slug])


def _reads(export):
    slug, pk = export.project.slug, export.pk
    return [
        _list_url(slug),
        reverse("exports-api:export-detail", args=[slug, pk]),
        reverse("exports-api:export-file", args=[slug, pk, "train.jsonl"]),
    ]


@pytest.mark.parametrize(
    ("actor", "status"), [("reviewer", 403), ("annotator", 403), ("outsider", 404)]
)
def test_only_admins_may_use_the_export_api(api, finished, request, actor, status):
    api.force_authenticate(request.getfixturevalue(actor))
    assert [api.get(url).status_code for url in _reads(finished)] == [status] * 3
    assert api.post(_list_url(), {"format": "dpo"}, format="json").status_code == status
    assert Export.objects.count() == 1


def test_anonymous_callers_get_401(api, finished):
    assert [api.get(url).status_code for url in _reads(finished)] == [401] * 3
    assert api.post(_list_url(), {"format": "dpo"}, format="json").status_code == 401


def test_create_queues_a_job(
    api, judged, data_dir, queue_admin, django_capture_on_commit_callbacks
):
    api.force_authenticate(queue_admin)
    body = {
        "format": "dpo",
        "ties": "count-as-half",
        "splits": {"test": 0.1},
        "since": "2025-01-31T00:00:00Z",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(_list_url(), body, format="json")
    assert response.status_code == 202
    export = Export.objects.get()
    assert response.data["id"] == export.pk
    assert (response.data["status"], response.data["created_by"], response.data["files"]) == (
        "queued",
        "ada",
        [],
    )
    assert export.options["splits"] == [["test", 0.1]]
    assert export.policy["filters"]["since"] == "2025-01-31T00:00:00+00:00"
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"format": "xml"}, {"format": ['"xml" is not a valid choice.']}),
        (
            {"format": "sft"},
            {
                "format": [
                    "--format sft does not fit a pairwise project"
                    " (use dpo, kto, rm, openai-dpo, raw)"
                ]
            },
        ),
        (
            {"format": "dpo", "min_agreement": 1.5},
            {"min_agreement": ["Ensure this value is less than or equal to 1."]},
        ),
        (
            {"format": "dpo", "min_rating": 4},
            {"min_rating": ["--min-rating applies to SFT projects only"]},
        ),
        (
            {"format": "dpo", "exclude_annotators": ["mallory"]},
            {"exclude_annotators": ["not members of this project: mallory"]},
        ),
        (
            {"format": "dpo", "splits": {"test": 1.5}},
            {"splits": ['"test=1.5": the fraction must be between 0 and 1']},
        ),
    ],
)
def test_bad_options_answer_400_naming_the_field(api, judged, data_dir, queue_admin, body, errors):
    api.force_authenticate(queue_admin)
    response = api.post(_list_url(), body, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    assert Export.objects.count() == 0


def test_poll_shows_progress_counts_and_files(api, finished, queue_admin):
    api.force_authenticate(queue_admin)
    data = api.get(_reads(finished)[1]).json()
    assert (data["status"], data["percent"], data["rows"]) == ("succeeded", 100, 8)
    assert (data["processed_annotations"], data["total_annotations"]) == (20, 20)
    assert data["counts"] == finished.counts
    files = {f["name"]: f for f in data["files"]}
    assert sorted(files) == ["README.md", "manifest.json", "test.jsonl", "train.jsonl"]
    assert files["train.jsonl"]["sha256"] == finished.files["train.jsonl"]["sha256"]
    assert files["train.jsonl"]["url"] == _reads(finished)[2]
    listed = api.get(_list_url()).json()
    assert [row["id"] for row in listed["results"]] == [finished.pk]


@pytest.mark.parametrize("name", ["train.jsonl", "test.jsonl", "manifest.json", "README.md"])
def test_download_serves_exactly_the_files_bytes(api, finished, queue_admin, name):
    api.force_authenticate(queue_admin)
    url = reverse("exports-api:export-file", args=[finished.project.slug, finished.pk, name])
    response = api.get(url)
    assert response.status_code == 200
    assert (
        b"".join(response.streaming_content) == (export_directory(finished.pk) / name).read_bytes()
    )


def test_download_of_an_unknown_file_is_404(api, finished, queue_admin):
    api.force_authenticate(queue_admin)
    url = reverse("exports-api:export-file", args=[finished.project.slug, finished.pk, "x.jsonl"])
    assert api.get(url).status_code == 404
