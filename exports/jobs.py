"""Exports as Celery jobs, for the Export page and the API.

`start_export` checks the options at once (a bad option is the caller's error, not a failed
job), records a QUEUED Export with the options as given, and queues `run_export_job` on commit.
`run_job` claims the job with a conditional UPDATE (QUEUED -> RUNNING), so a second delivery of
the message, or a retry, finds nothing to claim and does nothing. A job still RUNNING past the
task's hard time limit had its worker killed: it is claimed again and starts over, which is
safe because every file is written atomically into the job's own directory and the Export row
is finished only by the run that wrote them.

The files go to DATA_DIR/exports/<id>/ (train.jsonl, a file per split, manifest.json,
README.md), so that the web process can serve them by name and nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone

from exports import services
from exports.errors import ExportError
from exports.models import Export
from exports.options import ExportOptions, from_json, to_json
from exports.writing import plan_output
from labeling.models import Project

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5
MANIFEST, CARD = "manifest.json", "README.md"
_HARD_LIMIT = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


def export_directory(export_id: int) -> Path:
    return Path(settings.DATA_DIR) / "exports" / str(export_id)


def start_export(*, project: Project, options: ExportOptions, created_by: Any) -> Export:
    """Check the options and queue a job; InvalidOptions (nothing recorded) if they do not fit.
    Each call makes a new job."""
    from exports import tasks  # tasks import this module

    _, spec = services.prepare(project, options)
    export = Export.objects.create(
        project=project,
        format=spec.format,
        style=services.style_of(spec),
        policy=spec.describe(),
        options=to_json(options),
        status=Export.Status.QUEUED,
        path="",
        created_by=created_by,
    )
    export.path = str(export_directory(export.pk)) + "/"
    export.save(update_fields=["path"])
    # On commit: a worker must not look for a row that a rollback would take back.
    tasks.run_export_job.delay_on_commit(export.pk)
    return export


def run_job(*, export_id: int) -> None:
    """Run a queued export job. Idempotent: a job runs once; a redelivery is a no-op."""
    now = timezone.now()
    abandoned = Q(status=Export.Status.RUNNING, started_at__lt=now - _HARD_LIMIT)
    claimed = Export.objects.filter(Q(status=Export.Status.QUEUED) | abandoned, pk=export_id)
    if not claimed.update(status=Export.Status.RUNNING, started_at=now, processed_annotations=0):
        logger.info("export.not_queued", extra={"export_id": export_id})
        return
    export = Export.objects.select_related("project").get(pk=export_id)
    progress = JobProgress(export)
    try:
        _run(export, progress)
    except ExportError as error:  # no rows, or the project changed since the job was queued
        services.fail(export, error)
        logger.info("export.failed", extra={"export_id": export_id, "reason": str(error)})
    except Exception as error:
        # Terminal: the row says what went wrong; a retry would find the job claimed anyway.
        services.fail(export, error)
        logger.exception("export.crashed", extra={"export_id": export_id})
    finally:
        progress.close()
    logger.info("export.finished", extra={"export_id": export_id})


def abandoned_jobs() -> list[int]:
    """Jobs still "running" past the task's hard time limit: their worker died.

    A pool child killed by the time limit or the OOM killer gets its message acked, so no
    redelivery comes to take the job over; the periodic task queues these again, and
    `run_job` takes each over by its compare-and-set.
    """
    since = timezone.now() - _HARD_LIMIT
    rows = Export.objects.filter(status=Export.Status.RUNNING, started_at__lt=since)
    return list(rows.values_list("pk", flat=True)[:100])


def _run(export: Export, progress: JobProgress) -> None:
    facts, spec = services.prepare(export.project, from_json(export.options))
    # The directory is the job's own: files of an abandoned attempt are replaced.
    plan = plan_output(export.path, spec.splitter.names, force=True)
    job = services.Job(export, export.project, facts, spec, plan)
    services.execute(job, None, progress)


def job_files(export: Export) -> dict[str, Path]:
    """The files of a finished job, by name: its data files, the manifest and the card.
    Empty for an export written by the command, which lives where its caller put it."""
    if export.status != Export.Status.SUCCEEDED or not export.options:
        return {}
    directory = export_directory(export.pk)
    return {name: directory / name for name in [*export.files, MANIFEST, CARD]}


def file_facts(export: Export) -> dict[str, dict[str, Any]]:
    """sha256, rows and bytes of each file of a finished job; the data files' as recorded,
    the manifest's and the card's (small, written after the row's facts) read from disk."""
    facts: dict[str, dict[str, Any]] = {}
    for name, path in job_files(export).items():
        if name in export.files:
            facts[name] = dict(export.files[name])
        elif path.is_file():
            data = path.read_bytes()
            sha256 = hashlib.sha256(data).hexdigest()
            facts[name] = {"sha256": sha256, "rows": None, "bytes": len(data)}
    return facts


class JobProgress:
    """Stores a running job's progress: the total at once, then at most every 0.5 s.

    The export reads inside a read-only snapshot transaction, and a row written through it
    would stay invisible to the pages polling the job (and fail: READ ONLY), so the writes go
    through a connection of their own. Inside a caller's transaction (tests) the export reads
    through that transaction, which can write and whose writes its caller sees: use it.
    """

    def __init__(self, export: Export) -> None:
        self.export_id = export.pk
        self.written_at = 0.0
        self.total = -1
        self.own = connection.in_atomic_block
        self.side: BaseDatabaseWrapper | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        # The first call writes the total at once; later ones come at a bounded rate.
        if total == self.total and now - self.written_at < PROGRESS_SECONDS:
            return
        self.written_at, self.total = now, total
        self._write(done, total)

    def _write(self, done: int, total: int) -> None:
        table = Export._meta.db_table
        sql = (
            f"UPDATE {table} SET processed_annotations = %s, total_annotations = %s"  # noqa: S608
            " WHERE id = %s AND status = 'running'"
        )
        try:
            with self._connection().cursor() as cursor:
                cursor.execute(sql, [done, total, self.export_id])
        except DatabaseError:
            # A progress bar is not worth failing an export for (SQLite: another writer held
            # the lock past the timeout); the next write, or the finish, catches up.
            logger.warning("export.progress_not_written", extra={"export_id": self.export_id})

    def _connection(self) -> BaseDatabaseWrapper:
        if self.own:
            return connection
        if self.side is None:
            self.side = connections.create_connection(DEFAULT_DB_ALIAS)
        return self.side

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
