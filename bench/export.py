"""Export benchmark: N synthetic pairwise judgements (3 per item) exported to dpo on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/annotate_exp_bench \
        .venv/bin/python bench/export.py --judgements 100000 1000000

For each size: a fresh pairwise project (overlap 3) is filled with COPY (items, two responses
each, three submitted leases and judgements per item; seeded, so every run has the same data),
then a child process runs `services.run_export(format="dpo")` into a temporary directory and
prints wall time, judgements read per second, rows written per second and its peak RSS. The
export runs in its own process so that the RSS is the export's alone, not the data generation's.
Targets: >= 50,000 judgements/s and <= 300 MB peak RSS, flat as the data grows.
Results go in docs/benchmarks.md ("## Export").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness import ensure_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/annotate_exp_bench")

JUDGES = 3
# Per item: three votes, mostly for one side, so most items make a pair (like real data).
VOTES = (("a", "a", "a"), ("a", "a", "b"), ("b", "b", "a"), ("a", "tie", "a"), ("a", "b", "tie"))


def main() -> None:
    args = _arguments()
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    if args.measure is not None:
        _measure(args.measure)
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for judgements in args.judgements:
        project_id = _fill(judgements, args.seed)
        try:
            # A fresh interpreter: its peak RSS is the export's, not the generator's.
            command = [sys.executable, __file__, "--measure", str(project_id)]
            subprocess.run(command, check=True)
        finally:
            if not args.keep:
                _drop(project_id)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--judgements", type=int, nargs="+", default=[100_000, 1_000_000], help="sizes to run"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the generator")
    parser.add_argument("--keep", action="store_true", help="keep the projects afterwards")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the child process
    return parser.parse_args()


def _fill(judgements: int, seed: int) -> int:
    """A new project with judgements // 3 items, each judged by the same three users."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import Project

    items = judgements // JUDGES
    slug = f"bench-export-{judgements}-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    with transaction.atomic():
        project = Project.objects.create(name=slug, slug=slug, kind="pairwise", overlap=JUDGES)
        User = get_user_model()
        judges = [User.objects.get_or_create(username=f"bench-judge-{n}")[0].pk for n in range(3)]
        with connection.cursor() as cursor:
            _copy_all(cursor.connection, project.pk, judges, items, random.Random(seed))
    with connection.cursor() as cursor:
        # Statistics for the planner, as autovacuum would gather them after a bulk load: the
        # export's single query is planned badly on tables never analyzed.
        cursor.execute(
            "ANALYZE labeling_item, labeling_response, labeling_annotation, labeling_review"
        )
    elapsed = time.perf_counter() - started
    print(f"filled {items:,} items, {JUDGES * items:,} judgements in {elapsed:.1f} s")
    return project.pk


def _copy_all(raw: Any, project_id: int, judges: list[int], items: int, rng: random.Random) -> None:
    first_item = _reserve(raw, "labeling_item", items)
    first_lease = _reserve(raw, "labeling_assignment", JUDGES * items)
    vocabulary = ["".join(rng.choices("aeioukltmnrs", k=rng.randint(2, 8))) for _ in range(3000)]
    now = "2025-03-01T12:00:00+00:00"
    with raw.cursor() as cursor:
        with cursor.copy(
            "COPY labeling_item (id, project_id, external_id, messages, prompt, draft_response,"
            " metadata, content_hash, status, open_slots, priority, created_at) FROM STDIN"
        ) as copy:
            for n in range(items):
                prompt = " ".join(rng.choices(vocabulary, k=rng.randint(10, 40)))
                messages = json.dumps([{"role": "user", "content": prompt}])
                row = (first_item + n, project_id, f"b-{n}", messages, prompt, "", "{}")
                copy.write_row((*row, uuid.uuid4().hex * 2, "active", 0, 0, now))
        with cursor.copy(
            "COPY labeling_response (item_id, position, model, text) FROM STDIN"
        ) as copy:
            for n in range(items):
                for position in (0, 1):
                    text = " ".join(rng.choices(vocabulary, k=rng.randint(20, 80)))
                    copy.write_row((first_item + n, position, f"model-{position}", text))
        _copy_judgements(cursor, project_id, judges, items, first_item, first_lease, rng, now)


def _copy_judgements(
    cursor: Any,
    project_id: int,
    judges: list[int],
    items: int,
    first_item: int,
    first_lease: int,
    rng: random.Random,
    now: str,
) -> None:
    with cursor.copy(
        "COPY labeling_assignment (id, project_id, item_id, annotator_id, status, swapped, gold,"
        " expires_at, created_at, finished_at, skip_reason) FROM STDIN"
    ) as copy:
        for n in range(JUDGES * items):
            item, judge = first_item + n // JUDGES, judges[n % JUDGES]
            swapped = rng.random() < 0.5
            copy.write_row(
                (
                    first_lease + n,
                    project_id,
                    item,
                    judge,
                    "submitted",
                    swapped,
                    False,
                    now,
                    now,
                    now,
                    "",
                )
            )
    with cursor.copy(
        "COPY labeling_annotation (assignment_id, project_id, item_id, annotator_id, client_id,"
        " response_text, draft_text, flags, notes, choice, strength, rationale, criteria,"
        " time_spent_ms, created_at) FROM STDIN"
    ) as copy:
        for n in range(items):
            votes = rng.choice(VOTES)
            for judge in range(JUDGES):
                choice = votes[judge]
                strength = rng.randint(1, 3) if choice in ("a", "b") else None
                copy.write_row((
                    first_lease + JUDGES * n + judge, project_id, first_item + n, judges[judge],
                    uuid.uuid4(), "", "", "[]", "", choice, strength, "", "{}", 4000, now,
                ))  # fmt: skip


def _reserve(raw: Any, table: str, count: int) -> int:
    """The first of `count` ids taken from the table's sequence, so COPY can name them."""
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'),"
            " nextval(pg_get_serial_sequence(%s, 'id')) + %s - 1)",
            [table, table, count],
        )
        (last,) = cursor.fetchone()
    return int(last) - count + 1


def _measure(project_id: int) -> None:
    from exports.services import run_export
    from labeling.models import Project

    project = Project.objects.get(pk=project_id)
    judgements = project.annotations.count()
    backend = _backend_pid()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu, pg_cpu = time.perf_counter(), time.process_time(), _cpu_of(backend)
        export = run_export(project=project, options=_options(), output=f"{tmp}/out/")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        pg_cpu = _cpu_of(backend) - pg_cpu
        size = sum(f["bytes"] for f in export.files.values())
    rows = sum(export.counts.values())
    print(
        f"export dpo: {judgements:,} judgements -> {rows:,} rows ({size / 2**20:.0f} MiB) in"
        f" {elapsed:.2f} s = {judgements / elapsed:,.0f} judgements/s, {rows / elapsed:,.0f}"
        f" rows/s; python cpu {cpu:.1f} s = {judgements / cpu:,.0f} judgements/s;"
        f" postgres backend cpu {pg_cpu:.1f} s; peak RSS {_peak_rss_mib():.0f} MiB;"
        f" load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}"
    )


def _options() -> Any:
    from exports.options import ExportOptions

    return ExportOptions(format="dpo")


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return int(pid)


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (the PostgreSQL backend that
    serves the export); 0 where /proc cannot tell (PostgreSQL on another host)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _drop(project_id: int) -> None:
    from django.db import connection, transaction

    # Raw deletes, children first: the ORM's cascade would load every row into memory.
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("labeling_annotation", "labeling_assignment"):
            cursor.execute(f"DELETE FROM {table} WHERE project_id = %s", [project_id])  # noqa: S608
        cursor.execute(
            "DELETE FROM labeling_response WHERE item_id IN "
            "(SELECT id FROM labeling_item WHERE project_id = %s)",
            [project_id],
        )
        cursor.execute("DELETE FROM labeling_item WHERE project_id = %s", [project_id])
        cursor.execute("DELETE FROM exports_export WHERE project_id = %s", [project_id])
        cursor.execute("DELETE FROM labeling_project WHERE id = %s", [project_id])


if __name__ == "__main__":
    main()
