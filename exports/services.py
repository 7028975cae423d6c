"""Running an export: one consistent read, streamed through the pipeline into atomic files.

`run_export` reads the project inside one snapshot (REPEATABLE READ on PostgreSQL, a deferred
read transaction on SQLite), so rows, counts and hashes all describe the same moment even while
annotators keep submitting. It writes the data files first (each atomically), then the manifest
and the dataset card, and records the run in an `Export` row created before the read and
finished after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

import annotate
from curation.dedup.selectors import near_duplicate_representatives
from exports import reading
from exports.card import Outcome, card, manifest
from exports.errors import InvalidOptions, NoRows
from exports.models import Export
from exports.options import RAW, ExportOptions, ExportSpec, ProjectFacts, resolve
from exports.pipeline import Pipeline, Stats
from exports.reading import Progress
from exports.writing import OutputPlan, Sinks, plan_output, write_atomic
from labeling.models import Project

Emit = Callable[[bytes], Any]


@dataclass(frozen=True)
class Job:
    export: Export
    project: Project
    facts: ProjectFacts
    spec: ExportSpec
    plan: OutputPlan


def run_export(
    *,
    project: Project,
    options: ExportOptions,
    output: str,
    force: bool = False,
    created_by: Any = None,
    emit: Emit | None = None,
    progress: Progress | None = None,
    chunk_size: int = reading.CHUNK_SIZE,
) -> Export:
    """Write an export to `output` ("-": to `emit`) and record it; ExportError if it cannot.
    Each call makes an Export row; unchanged data gives byte-identical data files and card."""
    facts, spec = prepare(project, options)
    plan = plan_output(output, spec.splitter.names, force=force)
    export = Export.objects.create(
        project=project,
        format=spec.format,
        style=style_of(spec),
        policy=spec.describe(),
        path=output if plan.streams else str(Path(output).resolve()),
        created_by=created_by,
    )
    execute(Job(export, project, facts, spec, plan), emit, progress, chunk_size)
    return Export.objects.get(pk=export.pk)


def prepare(project: Project, options: ExportOptions) -> tuple[ProjectFacts, ExportSpec]:
    """The project's facts and the resolved spec; InvalidOptions when the options do not fit."""
    facts = project_facts(project)
    spec = resolve(options, facts, annotator_ids(options.exclude_annotators))
    if spec.splitter.splits:
        near = near_duplicate_representatives(project.pk)
        spec = replace(spec, splitter=replace(spec.splitter, near=near))
    return facts, spec


def style_of(spec: ExportSpec) -> str:
    return "" if spec.format == RAW else spec.style


def execute(
    job: Job, emit: Emit | None, progress: Progress | None, chunk_size: int = reading.CHUNK_SIZE
) -> None:
    """Write a RUNNING export and finish it, as succeeded or (re-raising) failed."""
    try:
        _write(job, emit, progress, chunk_size)
    except BaseException as error:
        fail(job.export, error)
        raise


def fail(export: Export, error: BaseException) -> None:
    """Record a running export as failed, with why; a no-op on a finished one."""
    dropped = error.dropped if isinstance(error, NoRows) else {}
    _finish(export, Export.Status.FAILED, error=str(error) or repr(error), dropped=dropped)


def stream(
    project: Project, pipeline: Pipeline, progress: Progress | None, chunk_size: int
) -> Iterator[tuple[str, bytes]]:
    """(split, line) of every row, read inside the caller's snapshot; the preview uses it too,
    so the counts it shows are the export's own. A majority over pairs reads votes counted per
    item (`reading.read_tallied`); every other export reads each annotation."""
    report = _Reporter(project, progress)
    if pipeline.tallies:
        spec = pipeline.spec
        grouped = bool(spec.splitter.splits)
        for row in reading.read_tallied(
            project, spec.filters, grouped=grouped, chunk_size=chunk_size
        ):
            yield from pipeline.lines_of_tallied(row)
            report(row[-1][0])  # the item's judgements
        return
    for item in reading.read_items(project, raw=pipeline.spec.format == RAW, chunk_size=chunk_size):
        yield from pipeline.lines(item)
        report(len(item.annotations))


class _Reporter:
    """Progress in annotations read, if anyone asked for it."""

    def __init__(self, project: Project, progress: Progress | None) -> None:
        self._progress = progress
        self._total = 0 if progress is None else reading.count_annotations(project)
        self._done = 0

    def __call__(self, annotations: int) -> None:
        if self._progress is not None:
            self._done += annotations
            self._progress(self._done, self._total)


def _write(job: Job, emit: Emit | None, progress: Progress | None, chunk_size: int) -> None:
    pipeline = Pipeline(job.spec)
    with Sinks(job.plan, emit) as sinks:
        with read_snapshot():
            _write_batched(sinks, stream(job.project, pipeline, progress, chunk_size))
        if not sinks.rows:
            raise NoRows(pipeline.stats.dropped.as_dict())
        sinks.commit()
    outcome = Outcome(sinks.counts(), sinks.file_names, sinks.files(), sinks.first_line())
    _write_beside(job, pipeline.stats, outcome)
    _finish(
        job.export,
        Export.Status.SUCCEEDED,
        counts=outcome.counts,
        files=outcome.files,
        dropped=pipeline.stats.dropped.as_dict(),
    )


WRITE_BATCH = 1_000  # lines per split handed to a sink at once


def _write_batched(sinks: Sinks, lines: Iterator[tuple[str, bytes]]) -> None:
    """Hand the lines to their split's sink a batch at a time: one hash update and one write
    per batch instead of per line (the same bytes, the same hash)."""
    batches: dict[str, list[bytes]] = {}
    for split, line in lines:
        batch = batches.get(split)
        if batch is None:
            batch = batches[split] = []
        batch.append(line)
        if len(batch) >= WRITE_BATCH:
            sinks.write_many(split, batch)
            batch.clear()
    for split, batch in batches.items():
        if batch:
            sinks.write_many(split, batch)


def _write_beside(job: Job, stats: Stats, outcome: Outcome) -> None:
    """The manifest and the dataset card; none for a stream (the Export row has the counts)."""
    volatile = {
        "export_id": job.export.pk,
        "created_at": job.export.created_at.isoformat(),
        "tool": {"name": "annotate", "version": annotate.__version__},
    }
    plan = job.plan
    if plan.card is not None:
        write_atomic(plan.card, card(job.spec, job.facts, job.project.name, stats, outcome))
    if plan.manifest is not None:
        # Last: a manifest whose hashes match the files says the export is complete.
        write_atomic(plan.manifest, manifest(job.spec, job.facts, stats, outcome, volatile))


def _finish(export: Export, status: str, **fields: Any) -> None:
    """RUNNING -> done, once: the conditional UPDATE is what makes a finished export final.
    A job's progress ends complete when it succeeded."""
    if status == Export.Status.SUCCEEDED:
        fields["processed_annotations"] = F("total_annotations")
    Export.objects.filter(pk=export.pk, status=Export.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )


@contextmanager
def read_snapshot() -> Iterator[None]:
    """One consistent view of the database for everything read inside.

    Inside a caller's transaction (tests, or an outer atomic block) that transaction's view is
    used as it is: the isolation level can only be set by a transaction's first statement.
    """
    if connection.in_atomic_block:
        yield
    elif connection.vendor == "sqlite":
        with _sqlite_deferred():
            yield
    else:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    # No JIT: an export's queries run once each, and compiling them cost more
                    # than it saved (seconds of PostgreSQL CPU at 100k judgements). A query, so
                    # it also takes the snapshot now: the view is the one the export started
                    # with, whatever its first read (a majority over pairs makes one query).
                    cursor.execute("SELECT set_config('jit', 'off', true)")
            yield


@contextmanager
def _sqlite_deferred() -> Iterator[None]:
    # The settings open SQLite transactions IMMEDIATE (the write lock, for the queue's claims).
    # An export holding that lock for its whole read would stall every submit; a DEFERRED
    # transaction only reads, and in WAL mode it sees one snapshot while writers go on.
    mode = getattr(connection, "transaction_mode", None)
    connection.transaction_mode = "DEFERRED"  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            connection.transaction_mode = mode  # type: ignore[attr-defined]
            yield
    finally:
        connection.transaction_mode = mode  # type: ignore[attr-defined]


def project_facts(project: Project) -> ProjectFacts:
    return ProjectFacts(
        slug=project.slug,
        kind=project.kind,
        overlap=project.overlap,
        rating_scale=project.rating_scale,
        flags=tuple(project.flags),
    )


def annotator_ids(usernames: tuple[str, ...]) -> frozenset[int]:
    """User ids for `--exclude-annotator` names; an unknown name is an error, not a no-op."""
    User = get_user_model()
    found = dict(User.objects.filter(username__in=usernames).values_list("username", "pk"))
    unknown = sorted(set(usernames) - set(found))
    if unknown:
        message = f"--exclude-annotator: no user named {', '.join(unknown)}"
        raise InvalidOptions(message, {"exclude_annotators": [message]})
    return frozenset(found.values())
