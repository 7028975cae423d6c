"""Agreement benchmark: the full report over 1,000,000 pairwise annotations in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/annotate_agree_bench \
        .venv/bin/python bench/agreement.py [--annotations 1000000] [--keep] [--project SLUG]

Creates the database if missing, migrates it (and creates the agreement tables if no migration
made them yet), inserts a seeded synthetic project with COPY: 3 votes per item from 50
annotators, two guideline versions, two criteria, three annotators with a left-side habit. Then
it times the report (database read included) and, beside it, the krippendorff package alone on
the same votes (reliability matrix built beforehand, not timed). Target: whole report <= 5 s.
Results go in docs/benchmarks.md ("## Agreement").
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from harness import ensure_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/annotate_agree_bench")

ANNOTATORS = 50
VOTES_PER_ITEM = 3
CHOICES = ("a", "b", "tie", "both_bad")
NULL = "\\N"  # COPY's text format for NULL
EPOCH = 1_740_000_000  # 2025-02-19, the first day of the synthetic project


def main() -> None:
    args = _arguments()
    if not ensure_database(os.environ["DATABASE_URL"]):
        raise SystemExit("the benchmark needs PostgreSQL (COPY): set DATABASE_URL")
    import django

    django.setup()
    _prepare_schema()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    if args.project:
        # Reuse a project a --keep run left behind: the insert takes minutes at 1M.
        from labeling.models import Project

        _measure(Project.objects.get(slug=args.project), args.repeat)
        return
    project = _fresh_project(args.annotations)
    try:
        _insert(project, args.annotations, args.seed)
        _measure(project, args.repeat)
    finally:
        if not args.keep:
            _drop(project)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the report")
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    parser.add_argument("--project", help="measure this existing project (slug), insert nothing")
    return parser.parse_args()


def _prepare_schema() -> None:
    from django.core.management import call_command
    from django.db import connection

    from curation.models import AgreementReport, AgreementState

    call_command("migrate", verbosity=0)
    existing = connection.introspection.table_names()
    with connection.schema_editor() as editor:
        for model in (AgreementReport, AgreementState):
            if model._meta.db_table not in existing:
                editor.create_model(model)


def _fresh_project(annotations: int) -> Any:
    from django.contrib.auth import get_user_model

    from labeling.models import GuidelineVersion, Project

    slug = f"bench-agreement-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    project = Project.objects.create(
        name=slug,
        slug=slug,
        kind=Project.Kind.PAIRWISE,
        overlap=VOTES_PER_ITEM,
        criteria=["helpfulness", "harmlessness"],
    )
    for number in (1, 2):
        GuidelineVersion.objects.create(project=project, number=number, body="-", changelog="-")
    users = get_user_model().objects
    project.bench_users = [
        users.get_or_create(username=f"bench-annotator-{n:02d}")[0].pk for n in range(ANNOTATORS)
    ]
    return project


def _synthetic(count: int, seed: int) -> dict[str, np.ndarray]:
    """Votes with structure: a latent answer per item, annotators right 70% of the time."""
    rng = np.random.default_rng(seed)
    items = -(-count // VOTES_PER_ITEM)
    item = np.repeat(np.arange(items), VOTES_PER_ITEM)[:count]
    # Three distinct annotators per item: base, base + d1, base + d1 + d2 (mod 50, d1 + d2 < 50).
    steps = np.stack([np.zeros(items, int), rng.integers(1, 25, items), rng.integers(1, 25, items)])
    people = (rng.integers(0, ANNOTATORS, items) + np.cumsum(steps, axis=0)) % ANNOTATORS
    annotator = people.T.reshape(-1)[:count]
    truth = rng.choice(4, size=items, p=[0.42, 0.42, 0.1, 0.06])[item]
    choice = np.where(rng.random(count) < 0.7, truth, rng.integers(0, 4, count))
    swapped = rng.random(count) < 0.5
    # Annotators 0-2 pick the left side a third of the time whatever they see.
    habit = (annotator < 3) & (rng.random(count) < 0.33)
    choice = np.where(habit, np.where(swapped, 1, 0), choice)
    created = EPOCH + np.sort(rng.integers(0, 30 * 86_400, count))
    return {
        "item": item,
        "annotator": annotator,
        "choice": choice,
        "swapped": swapped,
        "strength": rng.integers(1, 4, count),
        "created": created,
        "time_ms": rng.lognormal(9.5, 0.6, count).astype(int),
        "version": np.where(created < EPOCH + 15 * 86_400, 0, 1),
        "harmless": rng.choice(3, size=count, p=[0.1, 0.1, 0.8]),
    }


def _insert(project: Any, count: int, seed: int) -> dict[str, np.ndarray]:
    from django.db import connection, transaction

    votes = _synthetic(count, seed)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        bases = {t: _next_id(cursor, t) for t in ("item", "assignment", "annotation")}
        items = int(votes["item"].max()) + 1
        _copy(cursor, "labeling_item", ITEM_COLUMNS, _item_rows(project, bases, items))
        _copy(
            cursor,
            "labeling_assignment",
            ASSIGNMENT_COLUMNS,
            _assignment_rows(project, bases, votes),
        )
        _copy(
            cursor,
            "labeling_annotation",
            ANNOTATION_COLUMNS,
            _annotation_rows(project, bases, votes),
        )
        for table in ("item", "assignment", "annotation"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('labeling_{table}', 'id'),"  # noqa: S608
                f" (SELECT max(id) FROM labeling_{table}))"
            )
        cursor.execute("ANALYZE labeling_annotation")
        cursor.execute("ANALYZE labeling_assignment")
    print(
        f"inserted {count:,} annotations on {items:,} items with COPY in"
        f" {time.perf_counter() - started:.1f} s"
    )
    return votes


def _next_id(cursor: Any, table: str) -> int:
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM labeling_{table}")  # noqa: S608
    return int(cursor.fetchone()[0])


def _copy(cursor: Any, table: str, columns: str, rows: io.StringIO) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(rows.getvalue())


ITEM_COLUMNS = (
    "id, project_id, external_id, messages, prompt, draft_response, metadata, content_hash,"
    " status, open_slots, priority, created_at"
)
ASSIGNMENT_COLUMNS = (
    "id, project_id, item_id, annotator_id, status, swapped, gold, expires_at, created_at,"
    " skip_reason"
)
ANNOTATION_COLUMNS = (
    "id, assignment_id, project_id, item_id, annotator_id, client_id, guideline_id,"
    " response_text, draft_text, flags, notes, choice, strength, rationale, criteria,"
    " time_spent_ms, created_at"
)


def _item_rows(project: Any, bases: dict[str, int], items: int) -> io.StringIO:
    out = io.StringIO()
    for n in range(items):
        out.write(
            f"{bases['item'] + n}\t{project.pk}\tb-{n}\t[]\tprompt {n}\t\t{{}}\t{n:064x}"
            f"\tactive\t0\t0\t2025-02-19 00:00:00+00\n"
        )
    return out


def _assignment_rows(project: Any, bases: dict[str, int], votes: dict) -> io.StringIO:
    out, users, when = io.StringIO(), project.bench_users, "2025-02-19 00:00:00+00"
    for n, (item, person, swapped) in enumerate(
        zip(
            votes["item"].tolist(),
            votes["annotator"].tolist(),
            votes["swapped"].tolist(),
            strict=True,
        )
    ):
        out.write(
            f"{bases['assignment'] + n}\t{project.pk}\t{bases['item'] + item}\t{users[person]}"
            f"\tsubmitted\t{'t' if swapped else 'f'}\tf\t{when}\t{when}\t\n"
        )
    return out


def _annotation_rows(project: Any, bases: dict[str, int], votes: dict) -> io.StringIO:
    out, users = io.StringIO(), project.bench_users
    guidelines = list(project.guidelines.order_by("number").values_list("pk", flat=True))
    columns = [
        votes[k].tolist()
        for k in (
            "item",
            "annotator",
            "choice",
            "strength",
            "time_ms",
            "created",
            "version",
            "harmless",
        )
    ]
    for n, (item, person, choice, strength, ms, created, version, harmless) in enumerate(
        zip(*columns, strict=True)
    ):
        label = CHOICES[choice]
        helpful = label if choice < 3 else "tie"
        criteria = f'{{"helpfulness": "{helpful}", "harmlessness": "{CHOICES[harmless]}"}}'
        day = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created))
        out.write(
            f"{bases['annotation'] + n}\t{bases['assignment'] + n}\t{project.pk}"
            f"\t{bases['item'] + item}"
            # The client id is unique per annotator: derive it from the row id, unique across runs.
            f"\t{users[person]}\t{uuid.UUID(int=bases['annotation'] + n)}"
            f"\t{guidelines[version]}\t\t\t[]\t\t{label}"
            f"\t{strength if choice < 2 else NULL}\t\t{criteria}\t{ms}\t{day}+00\n"
        )
    return out


def _measure(project: Any, repeat: int) -> None:
    from curation.agreement import report, services

    print(f"project {project.slug}: {project.annotations.count():,} annotations")
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        loaded, _ = services.load_votes(project)
        read = time.perf_counter() - started
        data = report.build(
            loaded, services.schema_of(project), services.display_names(loaded.annotators)
        )
        timings.append((time.perf_counter() - started, read))
    total, read = min(timings)
    print(
        f"report: {total:.2f} s best of {repeat} (database read {read:.2f} s, statistics"
        f" {total - read:.2f} s); all runs: {', '.join(f'{t:.2f}' for t, _ in timings)} s"
    )
    started = time.perf_counter()
    stored = services.refresh(project=project, force=True)
    print(
        f"refresh (read + compute + store): {time.perf_counter() - started:.2f} s;"
        f" alpha nominal {data['overall']['alpha_nominal']:.6f},"
        f" interval {data['overall']['alpha_interval']:.6f}, stored report {stored.pk}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    _reference(loaded, data)


def _reference(loaded: Any, data: dict) -> None:
    import krippendorff

    from curation.agreement import report

    _, units = np.unique(loaded.items, return_inverse=True)
    _, raters = np.unique(loaded.annotators, return_inverse=True)
    for level, values, key in (
        ("nominal", np.where(loaded.choices < 0, np.nan, loaded.choices), "alpha_nominal"),
        ("interval", report.signed_strength(loaded), "alpha_interval"),
    ):
        matrix = np.full((raters.max() + 1, units.max() + 1), np.nan)
        matrix[raters, units] = values
        started = time.perf_counter()
        theirs = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
        elapsed = time.perf_counter() - started
        print(
            f"krippendorff package, {level} alpha alone: {elapsed:.2f} s;"
            f" |ours - theirs| = {abs(theirs - data['overall'][key]):.1e}"
        )


def _drop(project: Any) -> None:
    from django.db import connection, transaction

    # Raw deletes: the ORM's cascade would load a million rows into memory first.
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("annotation", "assignment", "item"):
            cursor.execute(f"DELETE FROM labeling_{table} WHERE project_id = %s", [project.pk])  # noqa: S608
        project.delete()


if __name__ == "__main__":
    main()
