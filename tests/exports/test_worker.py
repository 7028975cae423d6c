"""Export jobs through a real Celery worker process, as an admin starts them from the page.

The broker is kombu's filesystem transport under DATA_DIR, or Redis when REDIS_URL is set (the
suite's second pass); the worker connects to the test database. Same set-up as
tests/integration/test_worker.py.
"""

import json
import time

import pytest
from django.urls import reverse

from exports import tasks
from exports.jobs import export_directory
from exports.models import Export
from tests.exports.job_data import KEPT
from tests.integration.test_worker import worker  # noqa: F401 - the fixture


def _wait_until_finished(export_id: int, timeout: float = 60) -> Export:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        export = Export.objects.get(pk=export_id)
        if export.is_finished:
            return export
        time.sleep(0.2)
    raise AssertionError(f"export {export_id} did not finish within {timeout} s")


def _run_from_the_page(client, project, **options) -> int:
    response = client.post(reverse("exports:export", args=[project.slug]), options)
    assert response.status_code == 302
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


@pytest.mark.usefixtures("worker")
def test_the_worker_runs_the_export_and_a_second_delivery_changes_nothing(
    client, transactional_db, judged, queue_admin
):
    client.force_login(queue_admin)
    export = _wait_until_finished(_run_from_the_page(client, judged, format="dpo"))
    directory = export_directory(export.pk)
    assert (export.status, export.counts) == ("succeeded", {"train": KEPT})
    assert export.processed_annotations == export.total_annotations == 20
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["files"] == export.files
    data = (directory / "train.jsonl").read_bytes()

    tasks.run_export_job.delay(export.pk)  # as a redelivered message would
    marker = _run_from_the_page(client, judged, format="rm")  # queued behind it: solo pool
    assert _wait_until_finished(marker).status == "succeeded"
    again = Export.objects.get(pk=export.pk)
    assert (again.finished_at, again.files) == (export.finished_at, export.files)
    assert (directory / "train.jsonl").read_bytes() == data


@pytest.mark.usefixtures("worker")
def test_a_job_with_no_rows_fails_in_the_worker_and_says_why(
    client, transactional_db, judged, queue_admin
):
    client.force_login(queue_admin)
    export_id = _run_from_the_page(client, judged, format="dpo", min_votes="3")
    export = _wait_until_finished(export_id)
    assert export.status == "failed"
    assert export.error == (
        "no rows to export: annotations left out by non_decisive (2);"
        " items left out by min_votes (10)"
    )
    page = client.get(
        reverse("exports:detail", args=[judged.slug, export_id]), headers={"HX-Request": "true"}
    )
    assert page.status_code == 286
