"""Queue load benchmark: simulated annotators claim and submit through the HTTP API.

    .venv/bin/python bench/queue_load.py                   # both scenarios, gthread 4 x 2
    .venv/bin/python bench/queue_load.py --scenario saturation --worker-class sync --workers 4

Runs against gunicorn (started here, on 127.0.0.1 only, DEBUG=0) and the PostgreSQL database
named in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/annotate_queue_bench, created
if missing and migrated). Each scenario gets a fresh pairwise project seeded with --items items
(overlap 2), its annotators as users with API tokens, and is dropped afterwards unless --keep.
Before each, 32 annotators warm every gunicorn thread for 3 s (checked, not reported).

- saturation: 200 annotators, no think time. A cycle (one item labeled) is one submit, whose
  answer carries the next lease. Reports cycles/s and submit latencies over a 30 s window
  after a 5 s warm-up. Target: >= 200 cycles/s.
- realistic: 1,000 annotators who think 2-6 s (uniform) per item, starting over the first 6 s.
  Reports the latency of their first claims and of the submits in the 60 s window after the
  start. Target: p95 <= 50 ms. Mind the offered load: 1,000 / 4 s = 250 submits/s.

Everything is bounded: requests time out after 30 s, in-flight ones get 30 s to finish once a
window ends. Afterwards the database is checked: no item over-assigned, open_slots == overlap
- live - submitted, no (item, annotator) pair twice, every annotation on a submitted lease of
the same item and annotator, one annotation per 201 answer; and no 4xx/5xx answer, no
traceback in gunicorn's log. The exit status is 1 when a check fails.

The load generator is a minimal asyncio HTTP/1.1 client, one keep-alive connection per
annotator: ~85 us of CPU per request against aiohttp's ~200 us, which matters on a machine it
shares with gunicorn and PostgreSQL. Results go in docs/benchmarks.md ("## Queue load").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness import (
    BUCKET_S,
    ROOT,
    CpuMeter,
    Gunicorn,
    Http,
    Sample,
    ensure_database,
    latencies,
    per_bucket,
    tally,
)

if TYPE_CHECKING:  # Django models load only after django.setup()
    from labeling.models import Project

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")
# gunicorn reads its settings file (gc.freeze after the app loads) as bin/run and Docker do.
os.environ.setdefault("GUNICORN_CMD_ARGS", "--config python:annotate.gunicorn_conf")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/annotate_queue_bench")
os.environ["DEBUG"] = "0"  # DEBUG keeps every query in memory: not what production runs

CRITERIA = ["helpfulness", "honesty"]
CHOICES = ("left", "right", "tie", "both_bad")
REQUEST_TIMEOUT_S = 30
DRAIN_S = 30  # how long in-flight requests may take to finish once a scenario stops


@dataclass(frozen=True)
class Scenario:
    name: str
    annotators: int
    think: tuple[float, float]  # seconds between receiving an item and submitting it
    ramp_s: float  # annotators start spread over this long
    warmup_s: float  # measured from the start; the window follows
    window_s: float


SCENARIOS = {
    "saturation": Scenario("saturation", 200, (0, 0), 0, 5, 30),
    "realistic": Scenario("realistic", 1000, (2, 6), 6, 6, 60),
}
WARM_UP_S = 3


def main() -> None:
    args = _arguments()
    if not ensure_database(os.environ["DATABASE_URL"]):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _vacuum()  # whatever an interrupted run left
    names = list(SCENARIOS) if args.scenario == "both" else [args.scenario]
    failed = False
    with Gunicorn(args) as server:
        print(f"gunicorn: {server.describe()}; database: {os.environ['DATABASE_URL']}")
        for name in names:
            scenario = _scaled(SCENARIOS[name], args)
            failed |= not _run_scenario(scenario, args, server)
    sys.exit(1 if failed else 0)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--scenario", choices=[*SCENARIOS, "both"], default="both")
    add("--items", type=int, default=50_000, help="items seeded per scenario")
    add("--overlap", type=int, default=2, help="annotations wanted per item")
    add("--annotators", type=int, help="override the scenario's number of annotators")
    add("--window", type=float, help="override the scenario's measured window, in seconds")
    add("--think", type=_seconds_range, help="override the think time, e.g. 2,6 (seconds)")
    add("--port", type=int, default=0, help="gunicorn's port; 0 picks a free one")
    add("--worker-class", default="gthread", help="gunicorn worker class: gthread or sync")
    add("--workers", type=int, default=4)
    add("--threads", type=int, default=2, help="threads per gthread worker")
    add("--keep", action="store_true", help="keep the projects and their data afterwards")
    add("--seed", type=int, default=7)
    return parser.parse_args()


def _seconds_range(text: str) -> tuple[float, float]:
    low, high = (float(part) for part in text.split(","))
    return low, high


def _scaled(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """The scenario with the command line's overrides."""
    return Scenario(
        scenario.name,
        args.annotators or scenario.annotators,
        args.think or scenario.think,
        scenario.ramp_s,
        scenario.warmup_s,
        args.window or scenario.window_s,
    )


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Fixture:
    project: Project
    tokens: list[str]


def _seed(scenario: Scenario, args: argparse.Namespace) -> Fixture:
    from django.db import transaction

    from labeling.models import Project
    from labeling.services import guidelines

    slug = f"bench-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    project = Project.objects.create(
        name=slug, slug=slug, kind=Project.Kind.PAIRWISE, overlap=args.overlap, criteria=CRITERIA
    )
    started = time.perf_counter()
    _seed_items(project, args.items, random.Random(args.seed))
    users = _bench_users(scenario.annotators)
    with transaction.atomic():
        version = guidelines.publish(project=project, author=None, body="# Rules", changelog="v1")
    _join(project, users, version)
    _analyze()
    print(f"seeded {args.items:,} items for {len(users):,} annotators", end=" ")
    print(f"in {time.perf_counter() - started:.1f} s (project {slug})")
    return Fixture(project, _tokens(users))


def _seed_items(project: Project, count: int, rng: random.Random) -> None:
    from labeling.models import Item, Response

    words = [f"w{n}" for n in range(2000)]
    texts = [" ".join(rng.choices(words, k=rng.randint(50, 200))) for _ in range(500)]
    for start in range(0, count, 5000):
        numbers = range(start, min(start + 5000, count))
        items = Item.objects.bulk_create(
            Item(
                project=project,
                external_id=f"q-{n}",
                prompt=f"Question {n}: {texts[n % 500][:300]}?",
                messages=[{"role": "user", "content": f"Question {n}: {texts[n % 500][:300]}?"}],
                content_hash=f"{n:064x}",
                open_slots=project.overlap,
            )
            for n in numbers
        )
        Response.objects.bulk_create(
            Response(item=item, position=side, model=f"model-{side}", text=rng.choice(texts))
            for item in items
            for side in (0, 1)
        )


def _bench_users(count: int) -> list[Any]:
    """bench-annotator-0..count-1, created once and reused by later runs."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    model = get_user_model()
    names = [f"bench-annotator-{n}" for n in range(count)]
    model.objects.bulk_create([model(username=name) for name in names], ignore_conflicts=True)
    users = list(model.objects.filter(username__in=names).order_by("pk"))
    Token.objects.bulk_create(
        [Token(user=user, key=Token.generate_key()) for user in users], ignore_conflicts=True
    )
    return users


def _join(project: Project, users: list[Any], version: Any) -> None:
    from labeling.models import Membership, Role

    Membership.objects.bulk_create(
        Membership(user=user, project=project, role=Role.ANNOTATOR, acknowledged_guideline=version)
        for user in users
    )


def _tokens(users: list[Any]) -> list[str]:
    from rest_framework.authtoken.models import Token

    keys = dict(Token.objects.filter(user__in=users).values_list("user_id", "key"))
    return [keys[user.pk] for user in users]


def _analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them on a database in use.

    Run after seeding, and again once the warm-up has filled the assignment table: planned
    with the statistics of an empty table, the claim's anti-join scans every lease of the
    annotator instead of probing the (item, annotator) index for one item.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_item, labeling_response, labeling_assignment")
    connection.close()  # this may be a worker thread: leave no connection behind


DROP = (
    "DELETE FROM labeling_annotation WHERE project_id = %(p)s",
    "DELETE FROM labeling_assignment WHERE project_id = %(p)s",
    "DELETE FROM labeling_response WHERE item_id IN"
    " (SELECT id FROM labeling_item WHERE project_id = %(p)s)",
    "DELETE FROM labeling_item WHERE project_id = %(p)s",
)


def _drop(project: Project) -> None:
    from django.db import connection, transaction

    # Raw deletes: the ORM's cascade would load every row into memory first.
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in DROP:
            cursor.execute(statement, {"p": project.pk})
        project.delete()
    _vacuum()


QUEUE_TABLES = "labeling_item, labeling_response, labeling_assignment, labeling_annotation"


def _vacuum() -> None:
    """Reclaim the rows earlier runs deleted, as autovacuum does on a server in use.

    Without it (autovacuum may be off, as on the VM of docs/benchmarks.md), every run leaves
    100,000+ dead item rows behind, the claim's index scans wade through their entries, and
    each run measures a slower database than the one before.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {QUEUE_TABLES}, labeling_membership")


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Run:
    """One scenario's clock and everything measured in it."""

    scenario: Scenario
    slug: str
    rng: random.Random
    started: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)

    @property
    def stop_at(self) -> float:
        return self.started + self.scenario.warmup_s + self.scenario.window_s

    def going(self) -> bool:
        return time.perf_counter() < self.stop_at

    async def call(self, http: Http, kind: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, data = await http.post(path, body)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            http.close()
            status, data = 0, b""
        done = time.perf_counter()
        self.samples.append((kind, done - self.started, done - began, status))
        return status, json.loads(data) if data and status < 500 else None

    async def annotator(self, token: str, port: int) -> None:
        """Claim, then think and submit until the clock stops; a failed submit claims again."""
        http = Http(port, token)
        await asyncio.sleep(self.rng.uniform(0, self.scenario.ramp_s))
        try:
            lease = None
            while self.going():
                if lease is None:
                    status, lease = await self.call(
                        http, "claim", f"/api/projects/{self.slug}/claim/"
                    )
                    if status != 200:
                        return  # nothing left (204) or broken: this annotator is done
                if think := self.rng.uniform(*self.scenario.think):
                    await asyncio.sleep(think)
                if not self.going():
                    return
                status, body = await self.call(
                    http, "submit", f"/api/assignments/{lease['id']}/submit/", self.answer()
                )
                lease = body["next"] if status in (200, 201) else None
        finally:
            http.close()

    def answer(self) -> bytes:
        choice = self.rng.choice(CHOICES)
        answer: dict[str, Any] = {
            "client_id": str(uuid.uuid4()),
            "choice": choice,
            "rationale": "More accurate and to the point.",
            "criteria": {name: self.rng.choice(("left", "right", "tie")) for name in CRITERIA},
            "time_spent_ms": self.rng.randint(2000, 6000),
        }
        if choice in ("left", "right"):
            answer["strength"] = self.rng.randint(1, 3)
        return json.dumps(answer).encode()


async def _drive(run: Run, tokens: list[str], port: int) -> None:
    tasks = [asyncio.create_task(run.annotator(token, port)) for token in tokens]
    await asyncio.sleep(run.scenario.warmup_s)
    await asyncio.to_thread(_analyze)  # in a thread: the annotators keep going meanwhile
    await asyncio.sleep(max(0.0, run.stop_at - time.perf_counter()))
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- measuring and checking -------------------------------------------------------------------


def _run_scenario(scenario: Scenario, args: argparse.Namespace, server: Gunicorn) -> bool:
    print(
        f"\n## {scenario.name}: {scenario.annotators} annotators, think {scenario.think} s,",
        end=" ",
    )
    print(f"window {scenario.window_s:.0f} s after {scenario.warmup_s:.0f} s")
    fixture = _seed(scenario, args)
    tracebacks = server.errors_logged()
    try:
        # Warm every worker thread (its database connection, prepared statements) first, so
        # that the first claims measure the queue, not start-up; checked, not reported.
        warm_up = Scenario("warm-up", min(32, scenario.annotators), (0, 0), 0, 0, WARM_UP_S)
        warm = Run(warm_up, fixture.project.slug, random.Random(args.seed))
        asyncio.run(_drive(warm, fixture.tokens, server.port))
        run = Run(scenario, fixture.project.slug, random.Random(args.seed))
        cpu = CpuMeter(server.pids())
        asyncio.run(_drive(run, fixture.tokens, server.port))
        print(cpu.report(time.perf_counter() - run.started))
        _report(run)
        tracebacks = server.errors_logged() - tracebacks
        return _check(warm.samples + run.samples, fixture.project, tracebacks)
    finally:
        if not args.keep:
            _drop(fixture.project)


def _report(run: Run) -> None:
    scenario = run.scenario
    low, high = scenario.warmup_s, scenario.warmup_s + scenario.window_s
    in_window = [s for s in run.samples if low <= s[1] < high]
    cycles = sum(1 for kind, _, _, status in in_window if kind == "submit" and status == 201)
    print(f"requests: {len(run.samples):,} in all, {len(in_window):,} in the window;", end=" ")
    print(f"statuses: {tally(run.samples)}")
    print(
        f"cycles/s in the window: {cycles / scenario.window_s:.1f} ({cycles:,} submits);", end=" "
    )
    print(f"by {BUCKET_S} s: {per_bucket(in_window, low)}")
    # Claims happen once per annotator at the start (later leases ride on the submit's
    # answer), so all of them count; submits count in the window.
    print(latencies("claim", [s for s in run.samples if s[0] == "claim"]))
    print(latencies("submit", [s for s in in_window if s[0] == "submit"]))


INVARIANTS = {
    "items over-assigned (live + submitted > overlap)": """
        SELECT count(*) FROM labeling_item i JOIN labeling_project p ON p.id = i.project_id
        WHERE i.project_id = %(p)s AND (SELECT count(*) FROM labeling_assignment a
            WHERE a.item_id = i.id AND a.status IN ('active', 'submitted')) > p.overlap""",
    "items whose open_slots != overlap - live - submitted": """
        SELECT count(*) FROM labeling_item i JOIN labeling_project p ON p.id = i.project_id
        WHERE i.project_id = %(p)s AND i.open_slots != p.overlap - (SELECT count(*)
            FROM labeling_assignment a
            WHERE a.item_id = i.id AND a.status IN ('active', 'submitted'))""",
    "duplicate (item, annotator) leases": """
        SELECT count(*) FROM (SELECT 1 FROM labeling_assignment WHERE project_id = %(p)s
            GROUP BY item_id, annotator_id HAVING count(*) > 1) d""",
    "duplicate (item, annotator) annotations": """
        SELECT count(*) FROM (SELECT 1 FROM labeling_annotation WHERE project_id = %(p)s
            GROUP BY item_id, annotator_id HAVING count(*) > 1) d""",
    "annotations not on a submitted lease of the same item and annotator": """
        SELECT count(*) FROM labeling_annotation n JOIN labeling_assignment a
            ON a.id = n.assignment_id
        WHERE n.project_id = %(p)s AND (a.status != 'submitted' OR a.item_id != n.item_id
            OR a.annotator_id != n.annotator_id OR a.project_id != n.project_id)""",
    "submitted leases without an annotation": """
        SELECT count(*) FROM labeling_assignment a WHERE a.project_id = %(p)s
        AND a.status = 'submitted' AND NOT EXISTS
            (SELECT 1 FROM labeling_annotation n WHERE n.assignment_id = a.id)""",
    "annotators with more than one live lease": """
        SELECT count(*) FROM (SELECT 1 FROM labeling_assignment WHERE project_id = %(p)s
            AND status = 'active' GROUP BY annotator_id HAVING count(*) > 1) d""",
}


def _check(samples: list[Sample], project: Project, tracebacks: int) -> bool:
    from django.db import connection

    problems = {}
    with connection.cursor() as cursor:
        for name, query in INVARIANTS.items():
            cursor.execute(query, {"p": project.pk})
            problems[name] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM labeling_annotation WHERE project_id = %s", [project.pk]
        )
        stored = cursor.fetchone()[0]
    created = sum(1 for kind, _, _, status in samples if kind == "submit" and status == 201)
    problems["annotations stored != 201 answers"] = abs(stored - created)
    problems["5xx answers"] = sum(1 for *_, status in samples if status >= 500)
    # Leases outlive the run and every answer is valid, so a 4xx is a bug too.
    problems["4xx answers"] = sum(1 for *_, status in samples if 400 <= status < 500)
    problems["requests without an answer"] = sum(1 for *_, status in samples if status == 0)
    problems["tracebacks in the gunicorn log"] = tracebacks
    for name, count in problems.items():
        print(f"check: {name}: {count}")
    ok = not any(problems.values())
    print(f"invariants: {'all hold' if ok else 'FAILED'} ({stored:,} annotations checked)")
    return ok


if __name__ == "__main__":
    main()
