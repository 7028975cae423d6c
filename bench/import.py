"""Import benchmark: N generated pairwise items through `imports.import_path`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/annotate_bench .venv/bin/python bench/import.py

Generates a JSON Lines file deterministically (seeded RNG; prompts of 20-80 words, responses of
50-200 words), streams it to a temporary file, creates a fresh pairwise project, imports the
file (check pass + insert pass, the default) and prints items/s and the peak RSS. The database
named in DATABASE_URL is created if missing and migrated. Targets: >= 10,000 items/s and a peak
RSS <= 400 MB for 100,000 items. Results go in docs/benchmarks.md ("## Import").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import ensure_database

if TYPE_CHECKING:  # Django models load only after django.setup()
    from labeling.models import Project

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")

TOPICS = ("cooking", "physics", "travel", "history", "code", "health", "law", "music")


def main() -> None:
    args = _arguments()
    ensure_database(os.environ.get("DATABASE_URL", ""))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        started = time.perf_counter()
        size = _generate(path, args.items, args.seed)
        print(f"generated {args.items:,} items, {size / 2**20:.0f} MiB in", end=" ")
        print(f"{time.perf_counter() - started:.1f} s")
        print(f"database: {connection.vendor}; {args.items:,} items, {2 * args.items:,} responses")
        for _ in range(args.repeat):
            project = _fresh_project()
            try:
                _measure(project, path, args.items)
            finally:
                if not args.keep:
                    _drop(project)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="items to generate")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generator")
    parser.add_argument("--repeat", type=int, default=1, help="imports, each in a new project")
    parser.add_argument("--keep", action="store_true", help="keep the projects afterwards")
    return parser.parse_args()


def _generate(path: Path, count: int, seed: int) -> int:
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng, 5000)
    with path.open("w", encoding="utf-8") as out:
        for number in range(count):
            record = {
                "id": f"bench-{number}",
                "prompt": _sentences(rng, vocabulary, rng.randint(20, 80)),
                "responses": [
                    {"model": "model-a", "text": _sentences(rng, vocabulary, rng.randint(50, 200))},
                    {"model": "model-b", "text": _sentences(rng, vocabulary, rng.randint(50, 200))},
                ],
                "metadata": {"source": "bench", "topic": rng.choice(TOPICS)},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.stat().st_size


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sta", "ther", "ing", "qu", "é", "on", "ver"]
    return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(size)]


def _sentences(rng: random.Random, vocabulary: list[str], words: int) -> str:
    chosen = rng.choices(vocabulary, k=words)
    # A sentence every ~12 words and a paragraph now and then, like real text.
    for index in range(11, words, 12):
        chosen[index] += ".\n\n" if rng.random() < 0.2 else "."
    return " ".join(chosen).capitalize() + "."


def _fresh_project() -> Project:
    from labeling.models import Project

    slug = f"bench-import-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return Project.objects.create(name=slug, slug=slug, kind=Project.Kind.PAIRWISE, overlap=3)


def _measure(project: Project, path: Path, count: int) -> None:
    from labeling.services.imports import import_path

    load = os.getloadavg()[0]  # other processes on the machine slow the import down
    rss_before = _peak_rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    report = import_path(project=project, path=path)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if report.created != count or report.errors:
        raise SystemExit(f"unexpected report: {report}")
    print(
        f"import: {elapsed:.2f} s = {count / elapsed:,.0f} items/s; python cpu {cpu:.1f} s;"
        f" peak RSS {_peak_rss_mib():.0f} MiB (before: {rss_before:.0f} MiB);"
        f" load average before: {load:.2f}"
    )


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _drop(project: Project) -> None:
    from django.db import connection, transaction

    # Raw deletes: the ORM's cascade would load every item into memory first.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM labeling_response WHERE item_id IN "
            "(SELECT id FROM labeling_item WHERE project_id = %s)",
            [project.pk],
        )
        cursor.execute("DELETE FROM labeling_item WHERE project_id = %s", [project.pk])
        project.delete()


if __name__ == "__main__":
    main()
