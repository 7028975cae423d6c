"""Export jobs: queued with checked options, claimed once, recoverable, with progress."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from exports import jobs, tasks
from exports.errors import InvalidOptions
from exports.jobs import JobProgress, export_directory, run_job, start_export
from exports.models import Export
from exports.options import ExportOptions
from exports.preview import preview
from tests.exports.job_data import KEPT

pytestmark = pytest.mark.django_db


def _start(project, user=None, **options):
    return start_export(project=project, options=ExportOptions(**options), created_by=user)


def test_start_records_a_queued_job_and_enqueues_it_on_commit(
    judged, data_dir, queue_admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        export = _start(judged, queue_admin, format="dpo", min_agreement=0.6)
    export.refresh_from_db()
    assert (export.status, export.path) == ("queued", f"{data_dir / 'exports' / str(export.pk)}/")
    assert export.options["min_agreement"] == 0.6
    assert export.policy["policy"]["min_votes"] == 2
    assert export.created_by == queue_admin
    assert len(callbacks) == 1


def test_bad_options_are_refused_at_once_and_name_the_field(judged, data_dir):
    with pytest.raises(InvalidOptions) as caught:
        _start(judged, format="dpo", per_annotator=True, min_votes=3, min_rating=4)
    assert sorted(caught.value.fields) == ["min_rating", "min_votes"]
    assert caught.value.fields["min_votes"] == ["--min-votes does not apply with --per-annotator"]
    assert Export.objects.count() == 0


def test_the_job_writes_its_files_and_finishes(judged, data_dir):
    export = _start(judged, format="dpo", splits=(("test", 0.5),))
    tasks.run_export_job(export.pk)
    export.refresh_from_db()
    directory = export_directory(export.pk)
    assert export.status == "succeeded"
    assert sum(export.counts.values()) == KEPT
    assert export.processed_annotations == export.total_annotations == 20
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.md", "manifest.json", "test.jsonl", "train.jsonl"
    ]  # fmt: skip
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["counts"] == export.counts
    assert manifest["export_id"] == export.pk
    names = {"train.jsonl", "test.jsonl", "manifest.json", "README.md"}
    assert set(jobs.file_facts(export)) == names


def test_running_a_job_twice_changes_nothing(judged, data_dir):
    export = _start(judged, format="dpo")
    run_job(export_id=export.pk)
    first = Export.objects.get(pk=export.pk)
    data = (export_directory(export.pk) / "train.jsonl").read_bytes()
    run_job(export_id=export.pk)
    again = Export.objects.get(pk=export.pk)
    assert (again.status, again.finished_at, again.files) == (
        "succeeded", first.finished_at, first.files
    )  # fmt: skip
    assert (export_directory(export.pk) / "train.jsonl").read_bytes() == data


def test_a_job_running_elsewhere_is_left_alone(judged, data_dir):
    export = _start(judged, format="dpo")
    started = timezone.now() - timedelta(minutes=5)
    Export.objects.filter(pk=export.pk).update(status="running", started_at=started)
    run_job(export_id=export.pk)
    export.refresh_from_db()
    assert (export.status, export.started_at, export.counts) == ("running", started, {})
    assert not export_directory(export.pk).exists()


def test_only_jobs_running_past_the_hard_limit_count_as_abandoned(judged, data_dir):
    past_limit = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    starts = {"queued": None, "running": timezone.now() - timedelta(minutes=5)}
    fresh, queued = _start(judged, format="dpo"), _start(judged, format="dpo")
    dead = _start(judged, format="dpo")
    Export.objects.filter(pk=fresh.pk).update(status="running", started_at=starts["running"])
    Export.objects.filter(pk=dead.pk).update(status="running", started_at=past_limit)
    assert Export.objects.get(pk=queued.pk).status == "queued"
    assert jobs.abandoned_jobs() == [dead.pk]


def test_a_job_whose_worker_died_runs_again(judged, data_dir):
    export = _start(judged, format="dpo")
    past_limit = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    Export.objects.filter(pk=export.pk).update(status="running", started_at=past_limit)
    directory = export_directory(export.pk)
    directory.mkdir(parents=True)
    (directory / "train.jsonl").write_bytes(b"left by the dead worker\n")
    run_job(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "succeeded"
    assert export.started_at > past_limit
    assert len((directory / "train.jsonl").read_bytes().splitlines()) == KEPT


def test_a_job_that_matches_nothing_fails_and_says_why(judged, data_dir):
    export = _start(judged, format="dpo", min_agreement=1.0, ties="drop-item", min_votes=3)
    run_job(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "failed"
    assert export.error.startswith("no rows to export: items left out by")
    assert export.dropped["items"]["min_votes"] == 8
    assert jobs.job_files(export) == {}


def test_a_job_fails_when_an_excluded_annotator_has_gone(judged, data_dir):
    export = _start(judged, format="dpo", exclude_annotators=("judge2",))
    judged.memberships.get(user__username="judge2").user.delete()
    run_job(export_id=export.pk)
    export.refresh_from_db()
    assert (export.status, export.error) == (
        "failed", "--exclude-annotator: no user named judge2"
    )  # fmt: skip


def test_progress_writes_the_total_at_once_then_at_a_bounded_rate(judged, data_dir):
    export = _start(judged, format="dpo")
    Export.objects.filter(pk=export.pk).update(status="running", started_at=timezone.now())
    progress = JobProgress(export)
    for done in range(1, 1001):
        progress(done, 1000)
    progress.close()
    export.refresh_from_db()
    # Written once in the 0.5 s this took: the first call; the rest waited for the interval.
    assert (export.processed_annotations, export.total_annotations) == (1, 1000)


def test_preview_counts_equal_the_exports_manifest(judged, data_dir):
    options = ExportOptions(format="dpo", ties="count-as-half", splits=(("test", 0.3),))
    shown = preview(project=judged, options=options)
    export = start_export(project=judged, options=options, created_by=None)
    run_job(export_id=export.pk)
    manifest = json.loads((export_directory(export.pk) / "manifest.json").read_text())
    assert shown.counts == manifest["counts"]
    assert shown.dropped == manifest["dropped"]
    assert (shown.rows, shown.annotations) == (sum(manifest["counts"].values()), 20)
