"""Importing items from a JSONL or CSV file: all of it, or nothing.

`import_path` streams the file once, inside one transaction: a crash, or a bad line when bad
lines are not to be skipped, rolls back everything, so a file never half-imports. Records are
checked and inserted batch by batch; after the first bad line nothing more is inserted, and the
rest of the file is read only to list every bad line before the rollback. Memory holds the
content hashes and ids seen, never the records.

Why one pass and not "check the file, then insert it": on PostgreSQL the database's work
(WAL, indexes, foreign keys) then overlaps with Python's reading and hashing, on another core,
and a good file is read once. Two passes ran at about 6,000 items/s, below the 10,000 target
(docs/benchmarks.md). The price: a rejected file costs the inserts made before its first bad
line (rolled back, never visible), and the project lock is held while the file is read.

Duplicates are items whose content hash (labeling.importing) is already in the project or
earlier in the file: counted, never inserted, so the queue never holds an item twice.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any, Self

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.text import get_valid_filename

from labeling.importing import (
    ItemRecord,
    ParsedLine,
    UnreadableFile,
    count_lines,
    json_string,
    read_records,
)
from labeling.models import ImportJob, Item, Project, Response

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000  # rows a COPY (or bulk_create); bigger batches measured faster, see benchmarks
STORED_ERRORS = 1000
PROGRESS_SECONDS = 0.5
PROGRESS_LINES = 5000

Progress = Callable[[int, int], None]

# Sent after an import job that created items has committed, with `project_id` and `job_id`.
# A hook for apps that labeling must not import (curation deduplicates the new items).
items_imported = Signal()


@dataclass
class ImportReport:
    total: int = 0  # records seen (blank lines do not count)
    created: int = 0
    duplicates: int = 0  # already in the project, or repeated earlier in the file
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    skipped: bool = False  # the bad lines in `errors` were skipped rather than aborting


class ImportRejected(Exception):
    """The file has bad lines (or cannot be read): nothing was imported."""

    def __init__(self, report: ImportReport, *, skippable: bool = True) -> None:
        self.report = report
        # False when the file cannot be read at all: skipping bad lines would not help.
        self.skippable = skippable
        super().__init__(_rejection_message(report, skippable))


def _rejection_message(report: ImportReport, skippable: bool) -> str:
    if not skippable:
        line, reason = report.errors[-1]
        return f"The file cannot be read (line {line}: {reason}): nothing was imported."
    count = len(report.errors)
    return (
        f"{count} bad line{'s' if count != 1 else ''}: nothing was imported. "
        "Fix them, or import again with 'skip bad lines'."
    )


def import_path(
    *,
    project: Project,
    path: Path | str,
    skip_bad_lines: bool = False,
    progress: Progress | None = None,
    job: ImportJob | None = None,
) -> ImportReport:
    """Import a JSONL/CSV file (gzip or not). Idempotent: importing a file again adds nothing.

    Raises ImportRejected, having imported nothing, when a line is bad and `skip_bad_lines` is
    False. `progress(done, total)`, in lines of the file, is called once a batch.
    """
    path = Path(path)
    lines = count_lines(path) if progress else 0
    with transaction.atomic(), _inserter(project, job) as insert:
        _lock(project)
        report = ImportReport()
        for last_line in _import_batches(project, path, report, insert, skip_bad_lines):
            if progress:
                progress(min(last_line, lines), lines)
        if progress:
            progress(lines, lines)  # trailing blank lines end no batch
        if report.errors and not skip_bad_lines:
            raise ImportRejected(report)  # rolls back the batches inserted before the first
    report.created = insert.created
    report.skipped = bool(report.errors)
    return report


def _lock(project: Project) -> None:
    # Serializes imports into one project, so that the duplicate checks see every committed
    # item. NO KEY: claims insert assignments that reference the project row, and a plain
    # FOR UPDATE would block them until the import commits. SQLite ignores this; its
    # IMMEDIATE transactions already serialize writers.
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).values_list("pk").get()


def _import_batches(
    project: Project, path: Path, report: ImportReport, insert: _Inserter, skip_bad_lines: bool
) -> Iterator[int]:
    """Check and insert batch by batch, yielding the last line number of each batch."""
    seen = _Seen(project, Item.objects.filter(project=project).exists(), insert.wait)
    try:
        for chunk in _chunks(read_records(path, kind=project.kind), BATCH_SIZE):
            fresh = seen.sort(chunk, report)
            if skip_bad_lines or not report.errors:
                insert(fresh)
            yield chunk[-1].number
    except UnreadableFile as error:
        report.errors.append((error.line, error.reason))
        raise ImportRejected(report, skippable=False) from error


def _chunks(lines: Iterator[ParsedLine], size: int) -> Iterator[list[ParsedLine]]:
    while chunk := list(islice(lines, size)):
        yield chunk


@dataclass
class _Seen:
    """What the import has seen: hashes and ids, never records, so memory stays flat."""

    project: Project
    stored: bool  # False: the project had no items, so the database need not be asked
    before_query: Callable[[], None]  # frees the connection from the inserter's thread
    hashes: set[str] = field(default_factory=set)
    ids: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (hash, line)

    def sort(self, chunk: list[ParsedLine], report: ImportReport) -> list[ItemRecord]:
        """Count the chunk's bad lines and duplicates into `report`; return the new records."""
        stored_hashes, stored_ids = self._stored([line.record for line in chunk if line.record])
        fresh = []
        for number, record, error in chunk:
            report.total += 1
            problem = error if record is None else self._id_clash(record, stored_ids)
            if problem is not None or record is None:
                report.errors.append((number, problem or ""))
            elif record["content_hash"] in self.hashes or record["content_hash"] in stored_hashes:
                report.duplicates += 1
            else:
                self._remember(record, number)
                fresh.append(record)
        return fresh

    def _remember(self, record: ItemRecord, number: int) -> None:
        self.hashes.add(record["content_hash"])
        if record["external_id"]:
            self.ids[record["external_id"]] = (record["content_hash"], number)

    def _stored(self, records: list[ItemRecord]) -> tuple[set[str], dict[str, str]]:
        if not self.stored or not records:
            return set(), {}
        self.before_query()
        items = Item.objects.filter(project=self.project)
        hashes = [record["content_hash"] for record in records]
        ids = [record["external_id"] for record in records if record["external_id"]]
        found = items.filter(content_hash__in=hashes).values_list("content_hash", flat=True)
        # The != "" lets PostgreSQL use the partial unique index on external ids.
        taken = items.filter(external_id__in=ids).exclude(external_id="")
        return set(found), dict(taken.values_list("external_id", "content_hash"))

    def _id_clash(self, record: ItemRecord, stored_ids: dict[str, str]) -> str | None:
        external_id, content = record["external_id"], record["content_hash"]
        if not external_id:
            return None
        if stored_ids.get(external_id, content) != content:
            return f'"id" "{external_id}" is already used by another item in this project'
        earlier, line = self.ids.get(external_id, (content, 0))
        if earlier != content:
            return f'"id" "{external_id}" is already used by line {line}'
        return None


def _inserter(project: Project, job: ImportJob | None) -> _Inserter:
    if connection.vendor == "postgresql":
        return _CopyInserter(project, job)
    return _Inserter(project, job)


class _Inserter:
    """Inserts the new records of a batch: items first, then their responses by item pk.

    A context manager: on exit every batch handed over is in the database (or has failed).
    """

    def __init__(self, project: Project, job: ImportJob | None) -> None:
        self.project_id = project.pk
        self.open_slots = project.overlap
        self.job_id = job.pk if job else None
        self.created = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def wait(self) -> None:
        """Return once every batch handed over is written: the connection is free again."""

    def __call__(self, records: list[ItemRecord]) -> None:
        if not records:
            return
        # SQLite 3.35+ and PostgreSQL both return the new pks from bulk_create.
        items = Item.objects.bulk_create([self._item(record) for record in records])
        Response.objects.bulk_create(
            Response(item_id=item.pk, position=position, model=model, text=text)
            for item, record in zip(items, records, strict=True)
            for position, (model, text) in enumerate(record["responses"])
        )
        self.created += len(items)

    def _item(self, record: ItemRecord) -> Item:
        return Item(
            project_id=self.project_id,
            import_job_id=self.job_id,
            external_id=record["external_id"],
            messages=record["messages"],
            prompt=record["prompt"],
            draft_response=record["draft_response"],
            metadata=record["metadata"],
            content_hash=record["content_hash"],
            open_slots=self.open_slots,
        )


class _CopyInserter(_Inserter):
    """PostgreSQL: COPY from a writer thread, many times faster than bulk_create's INSERTs.

    The caller's thread reads the file and formats each batch as COPY text; the writer thread
    sends it and waits for the server, without the GIL, so the server's work (WAL, indexes,
    foreign keys) runs on another core while the next batch is read (docs/benchmarks.md).
    The thread uses the caller's connection, inside the caller's transaction: psycopg's
    connection lock keeps their statements apart, and `wait` and the exit keep the caller off
    it until the thread is done. COPY returns no pks, so each batch first takes its item ids
    from the sequence. Item's defaults (status, priority, created_at) are written out here.
    """

    COPY_ITEMS = (
        f"COPY {Item._meta.db_table} (id, project_id, import_job_id, external_id, messages, "
        "prompt, draft_response, metadata, content_hash, status, open_slots, priority, "
        "created_at) FROM STDIN"
    )
    COPY_RESPONSES = f"COPY {Response._meta.db_table} (item_id, position, model, text) FROM STDIN"
    RESERVE_IDS = "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)"

    def __init__(self, project: Project, job: ImportJob | None) -> None:
        super().__init__(project, job)
        # One batch waits while one is written: memory stays at two batches.
        self.batches: queue.Queue[_CopyBatch | None] = queue.Queue(maxsize=1)
        self.failure: BaseException | None = None
        self.writer: threading.Thread | None = None
        self.foreign_keys: list[str] = []

    def __enter__(self) -> Self:
        # Check the foreign keys row by row during the COPY, on the server's core and while
        # the file is read, rather than all at commit while everything waits.
        self.foreign_keys = _foreign_keys(Item, Response)
        self._check_foreign_keys("IMMEDIATE")
        return self

    def __call__(self, records: list[ItemRecord]) -> None:
        self._raise_failure()
        if not records:
            return
        if self.writer is None:
            connection.ensure_connection()
            self.writer = threading.Thread(
                target=self._write, args=(connection.connection,), name="import-copy"
            )
            self.writer.start()
        self.batches.put(self._format(records))
        self.created += len(records)

    def wait(self) -> None:
        self.batches.join()
        self._raise_failure()

    def __exit__(self, *exc_info: object) -> None:
        if self.writer is not None:
            self.batches.put(None)
            self.writer.join()
            self.writer = None
        if exc_info[0] is None:
            self._raise_failure()
            self._check_foreign_keys("DEFERRED")  # as the caller's transaction had them

    def _check_foreign_keys(self, when: str) -> None:
        if self.foreign_keys:
            with connection.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {', '.join(self.foreign_keys)} {when}")

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _format(self, records: list[ItemRecord]) -> _CopyBatch:
        """COPY text rows, less the item ids, which only the writer thread knows."""
        head = f"\t{self.project_id}\t{_copy_text(self.job_id)}\t"
        tail = f"\t{Item.Status.ACTIVE.value}\t{self.open_slots}\t0\t{timezone.now().isoformat()}\n"
        batch = _CopyBatch([], [], [])
        for index, record in enumerate(records):
            batch.items.append(head + _item_row(record) + tail)
            for position, (model, text) in enumerate(record["responses"]):
                batch.owners.append(index)
                batch.responses.append(f"\t{position}\t{_copy_text(model)}\t{_copy_text(text)}\n")
        return batch

    def _write(self, raw: Any) -> None:
        while (batch := self.batches.get()) is not None:
            try:
                if self.failure is None:  # after a failure, drain so the caller never blocks
                    self._copy(raw, batch)
            except BaseException as error:
                self.failure = error  # raised in the caller's thread
            finally:
                self.batches.task_done()
        self.batches.task_done()

    def _copy(self, raw: Any, batch: _CopyBatch) -> None:
        # This thread holds the GIL while it joins, which stalls the reading thread: one
        # join a table, no string built per row.
        with raw.cursor() as cursor:
            cursor.execute(self.RESERVE_IDS, [Item._meta.db_table, len(batch.items)])
            ids = [str(item_id) for (item_id,) in cursor.fetchall()]
            with cursor.copy(self.COPY_ITEMS) as copy:
                copy.write(_prefixed(ids, batch.items))
            with cursor.copy(self.COPY_RESPONSES) as copy:
                copy.write(_prefixed([ids[index] for index in batch.owners], batch.responses))


def _prefixed(ids: list[str], rows: list[str]) -> bytes:
    return "".join(chain.from_iterable(zip(ids, rows, strict=True))).encode()


def _foreign_keys(*models: type[Item] | type[Response]) -> list[str]:
    """The quoted names of the deferred foreign keys of the models' tables."""
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint"
            " WHERE contype = 'f' AND condeferred AND conrelid = ANY(%s::regclass[])",
            [tables],
        )
        return [connection.ops.quote_name(name) for (name,) in cursor.fetchall()]


@dataclass
class _CopyBatch:
    items: list[str]  # item rows, each missing the leading id
    responses: list[str]  # response rows, each missing the leading item id
    owners: list[int]  # the index in `items` of each response's item


def _item_row(record: ItemRecord) -> str:
    """external_id to content_hash of an item's COPY row: the reading thread's hot spot."""
    messages = ",".join(
        f'{{"role": "{turn["role"]}", "content": {json_string(turn["content"])}}}'
        for turn in record["messages"]
    )
    metadata = json.dumps(record["metadata"], ensure_ascii=False) if record["metadata"] else "{}"
    # JSON text holds no raw tab or line end, so only its backslashes need escaping.
    return "\t".join(
        (
            _copy_text(record["external_id"]),
            f"[{messages}]".replace("\\", "\\\\"),
            _copy_text(record["prompt"]),
            _copy_text(record["draft_response"]),
            metadata.replace("\\", "\\\\"),
            record["content_hash"],
        )
    )


def _copy_text(value: object) -> str:
    """A value in COPY's text format: NULL is \\N; backslash, tab and line ends are escaped."""
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# Jobs ---------------------------------------------------------------------------------------


def start_import(
    *,
    project: Project,
    created_by: Any,
    uploaded: File | IO[bytes],
    filename: str,
    skip_bad_lines: bool = False,
) -> ImportJob:
    """Store the upload and queue its import. Each call makes a new job (and a new file)."""
    from labeling import tasks  # tasks import this module

    path = _store_upload(uploaded, filename)
    job = ImportJob.objects.create(
        project=project,
        created_by=created_by,
        filename=Path(filename).name[-255:],
        path=str(path),
        skip_bad_lines=skip_bad_lines,
    )
    # On commit: a worker must not look for a job row that a rollback would take back.
    tasks.run_import.delay_on_commit(job.pk)
    return job


def _store_upload(uploaded: File | IO[bytes], filename: str) -> Path:
    try:
        safe = get_valid_filename(Path(filename).name)[-100:]
    except SuspiciousFileOperation:  # nothing usable left, e.g. ".."
        safe = "upload"
    directory = Path(settings.UPLOAD_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}-{safe}"
    with path.open("wb") as out:
        if isinstance(uploaded, File):
            for chunk in uploaded.chunks():  # from the start, even if a form read it
                out.write(chunk)
        else:
            shutil.copyfileobj(uploaded, out, 1 << 20)
    return path


_HARD_LIMIT = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)


def run_job(*, job_id: int) -> None:
    """Run a queued import job. Idempotent: a job runs once, a redelivered message is a no-op.

    A job still "running" past the task's hard time limit had its worker killed; its one
    transaction was rolled back, so the redelivered message may run it again from the start.
    The uploaded file is deleted when the job ends, whatever the outcome.
    """
    now = timezone.now()
    abandoned = Q(status=ImportJob.Status.RUNNING, started_at__lt=now - _HARD_LIMIT)
    claimed = ImportJob.objects.filter(
        Q(status=ImportJob.Status.QUEUED) | abandoned, pk=job_id
    ).update(status=ImportJob.Status.RUNNING, started_at=now)
    if not claimed:
        logger.info("import.not_queued", extra={"job_id": job_id})
        return
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    try:
        report = _run(job)
    except ImportRejected as rejected:
        _finish(job, ImportJob.Status.FAILED, rejected.report, str(rejected))
    except Exception as error:
        # Terminal: the job row says what went wrong; a retry would find it claimed anyway.
        logger.exception("import.failed", extra={"job_id": job_id})
        _finish(job, ImportJob.Status.FAILED, ImportReport(), f"The import failed: {error}")
    else:
        _finish(job, ImportJob.Status.SUCCEEDED, report, _summary(report))
        if report.created:  # send_robust: a listener's failure never fails the import
            items_imported.send_robust(ImportJob, project_id=job.project_id, job_id=job.pk)
    # The job has ended: its items are stored, or its bad lines listed for a fixed re-upload.
    # Keeping the file would only fill the disk with copies of data the database holds.
    Path(job.path).unlink(missing_ok=True)


def abandoned_jobs() -> list[int]:
    """Jobs still "running" past the task's hard time limit: their worker died, and its acked
    message will not come back. The periodic task queues them again for `run_job`."""
    since = timezone.now() - _HARD_LIMIT
    rows = ImportJob.objects.filter(status=ImportJob.Status.RUNNING, started_at__lt=since)
    return list(rows.values_list("pk", flat=True)[:100])


def _run(job: ImportJob) -> ImportReport:
    job.total_lines = count_lines(Path(job.path))
    ImportJob.objects.filter(pk=job.pk).update(total_lines=job.total_lines)
    progress = _JobProgress(job)
    try:
        return import_path(
            project=job.project,
            path=job.path,
            skip_bad_lines=job.skip_bad_lines,
            progress=progress,
            job=job,
        )
    finally:
        progress.close()


def _summary(report: ImportReport) -> str:
    summary = f"{report.created} items created, {report.duplicates} duplicates left out."
    if report.errors:
        summary += f" {len(report.errors)} bad lines skipped."
    return summary


def _finish(job: ImportJob, status: str, report: ImportReport, message: str) -> None:
    errors = [{"line": line, "reason": reason} for line, reason in report.errors]
    if len(errors) > STORED_ERRORS:
        message += f" Only the first {STORED_ERRORS:,} bad lines are listed"
        message += f" ({len(errors) - STORED_ERRORS:,} more)."
    succeeded = status == ImportJob.Status.SUCCEEDED
    ImportJob.objects.filter(pk=job.pk).update(
        status=status,
        created_items=report.created,
        duplicate_items=report.duplicates,
        errors=errors[:STORED_ERRORS],
        message=message,
        processed_lines=job.total_lines if succeeded else job.processed_lines,
        finished_at=timezone.now(),
    )
    logger.info("import.finished", extra={"job_id": job.pk, "status": status})


class _JobProgress:
    """Stores a running job's progress, at most every 0.5 s or 5,000 lines.

    The import's transaction is open meanwhile, and a row written through it would stay
    invisible to the pages polling the job until the commit, so on PostgreSQL the writes go
    through a connection of their own. SQLite allows one writer at a time, the import: there
    the progress shows when the import ends.
    """

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.written_at = 0.0
        self.written_lines = 0
        self.side: BaseDatabaseWrapper | None = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.written_at < PROGRESS_SECONDS and done - self.written_lines < PROGRESS_LINES:
            return
        self.written_at, self.written_lines = now, done
        self.job.processed_lines = done
        self._write(self.job.processed_lines)

    def _write(self, lines: int) -> None:
        if connection.vendor != "postgresql":
            return  # SQLite: the import's transaction holds the only write lock
        if self.side is None:
            self.side = connections.create_connection(DEFAULT_DB_ALIAS)
        table = ImportJob._meta.db_table
        sql = f"UPDATE {table} SET processed_lines = %s WHERE id = %s"  # noqa: S608 - ours
        with self.side.cursor() as cursor:
            cursor.execute(sql, [lines, self.job.pk])

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
