"""A real Celery worker process runs the jobs the web app enqueues.

On the embedded defaults the broker is kombu's filesystem transport under DATA_DIR; with
REDIS_URL set (CI's second pass) it is a real Redis. The worker connects to the test database.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from labeling.models import ImportJob, Item
from tests.conftest import require_redis

ROOT = Path(__file__).resolve().parents[2]
GOOD = b'{"id": "w-1", "prompt": "First?"}\n{"id": "w-2", "prompt": "Second?"}\n'
BAD = b'{"id": "w-3", "prompt": "Fine?"}\n{"id": "w-4"}\n'


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker):
    """A `celery worker` subprocess on the same broker and database as these tests."""
    if os.environ.get("REDIS_URL"):
        require_redis()
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = os.environ | {"DATABASE_URL": database_url, "DATA_DIR": str(settings.DATA_DIR)}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "annotate",
        "worker",
        "--pool",
        "solo",
        "--queues",
        "default",
        "--loglevel",
        "WARNING",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command line
    yield process
    process.terminate()
    process.wait(timeout=20)


def _wait_until_finished(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"import job {job_id} did not finish within {timeout} s")


def _upload(client, project, content: bytes, **extra) -> int:
    url = reverse("labeling:import", kwargs={"slug": project.slug})
    upload = SimpleUploadedFile("items.jsonl", content, content_type="application/jsonl")
    response = client.post(url, {"file": upload, **extra})
    assert response.status_code == 302
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


def test_uploaded_file_is_imported_by_the_worker(
    client, worker, transactional_db, sft_project, queue_admin
):
    client.force_login(queue_admin)
    job = _wait_until_finished(_upload(client, sft_project, GOOD))
    assert (job.status, job.created_items, job.duplicate_items) == ("succeeded", 2, 0)
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["w-1", "w-2"]
    page = client.get(
        reverse("labeling:import-detail", kwargs={"slug": sft_project.slug, "pk": job.pk}),
        HTTP_HX_REQUEST="true",
    )
    assert page.status_code == 286  # htmx: stop polling, the job is done


def test_a_file_with_bad_lines_imports_nothing_and_says_why(
    client, worker, transactional_db, sft_project, queue_admin
):
    client.force_login(queue_admin)
    job = _wait_until_finished(_upload(client, sft_project, BAD))
    assert job.status == "failed"
    assert [error["line"] for error in job.errors] == [2]
    assert Item.objects.count() == 0


def test_skip_bad_lines_imports_the_rest(
    client, worker, transactional_db, sft_project, queue_admin
):
    client.force_login(queue_admin)
    job = _wait_until_finished(_upload(client, sft_project, BAD, skip_bad_lines="on"))
    assert (job.status, job.created_items) == ("succeeded", 1)
    assert [error["line"] for error in job.errors] == [2]
    assert list(Item.objects.values_list("external_id", flat=True)) == ["w-3"]
