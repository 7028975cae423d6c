"""A dedup run survives a worker killed half-way: the next worker finishes it, and the result
equals an uninterrupted run, with nothing counted, signed or grouped twice and nothing lost.

Runs on the embedded defaults (filesystem broker, SQLite file) and, with REDIS_URL and
DATABASE_URL set, on Redis and PostgreSQL.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
import time

from django.conf import settings

from curation.dedup import services
from curation.models import DedupBatch, DedupRun, DuplicatePair, ItemSignature
from labeling.models import Item
from tests.conftest import require_redis
from tests.curation.test_dedup import report, run
from tests.integration.test_worker import ROOT, _database_url

# 30 batches: enough that the kill lands mid-run (after 2), few enough for seconds, not minutes.
ITEMS, BATCH = 1200, 40
LEASE = 1


def _start_worker(database_url: str) -> subprocess.Popen:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "DEDUP_LEASE_SECONDS": str(LEASE),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "annotate", "worker", "--pool", "solo",
        "--queues", "cpu", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command line


def _corpus(project) -> None:
    rng = random.Random(3)
    words = [f"w{n}" for n in range(3000)]
    texts = [" ".join(rng.choices(words, k=rng.randint(30, 60))) for _ in range(ITEMS // 2)]
    texts += [t + " " + rng.choice(words) for t in texts[: ITEMS // 4]]  # near duplicates
    texts += [" ".join(rng.choices(words, k=40)) for _ in range(ITEMS - len(texts))]
    Item.objects.bulk_create(
        Item(
            project=project,
            prompt=text,
            messages=[{"role": "user", "content": text}],
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            open_slots=1,
        )
        for text in texts
    )


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} within {timeout} s")


def test_a_killed_worker_s_run_is_finished_by_the_next_one(
    transactional_db, sft_project, monkeypatch
):
    if os.environ.get("REDIS_URL"):
        require_redis()
    monkeypatch.setattr(services, "LEASE_SECONDS", LEASE)
    _corpus(sft_project)
    database_url = _database_url()
    first = _start_worker(database_url)
    try:
        started = services.start_dedup(project=sft_project, trigger="button", batch_size=BATCH)
        _wait(
            lambda: DedupRun.objects.get(pk=started.pk).batches_done >= 2,
            60,
            "no batch was signed",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    finally:
        first.kill()
    killed_at = DedupRun.objects.get(pk=started.pk)
    assert killed_at.status == "signing", "the run ended before the kill: make it longer"
    time.sleep(LEASE + 0.5)  # the killed worker's claim lapses
    second = _start_worker(database_url)
    try:
        done = _wait(
            lambda: DedupRun.objects.filter(pk=started.pk, status="succeeded").first(),
            120,
            "the run did not finish",
        )
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert (done.batches, done.batches_done) == (ITEMS // BATCH, ITEMS // BATCH)
    assert (done.items_to_sign, done.items_signed) == (ITEMS, ITEMS)
    assert set(DedupBatch.objects.values_list("status", flat=True)) == {"done"}
    assert ItemSignature.objects.count() == ITEMS
    interrupted = report(done)
    pairs = set(DuplicatePair.objects.values_list("first_id", "second_id", "similarity"))
    uninterrupted = run(sft_project, full=True)
    assert report(uninterrupted) == interrupted
    assert set(DuplicatePair.objects.values_list("first_id", "second_id", "similarity")) == pairs
    assert len([g for g in interrupted if g[0] == "near"]) == ITEMS // 4
