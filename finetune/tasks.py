"""Celery tasks: thin wrappers that take ids and call a service.

`run_finetune` is routed to the `gpu` queue (CELERY_TASK_ROUTES: "finetune.*"), which a worker
with --concurrency 1 --prefetch-multiplier 1 consumes (docs/finetune.md). The reaper belongs on
`default` (a route in settings, ahead of "finetune.*"): the gpu worker is busy while it trains.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from finetune import devices, runner, services

# A finetune outlives the global limits set for imports and exports.
SOFT_LIMIT = getattr(settings, "FINETUNE_SOFT_TIME_LIMIT", 24 * 3600)


@shared_task(
    bind=True,
    acks_late=True,
    serializer="json",
    soft_time_limit=SOFT_LIMIT,
    time_limit=SOFT_LIMIT + 300,
)
def run_finetune(self: Task, run_id: int) -> None:
    """Train one run. The status compare-and-set makes a redelivered message a no-op."""
    worker = self.request.hostname or "worker"
    run = services.claim(run_id=run_id, worker=worker, device=devices.detect())
    if run is not None:
        runner.execute(run)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def fail_stale_runs() -> int:
    """Fail running runs whose heartbeat stopped. Each fails once, so reruns are harmless."""
    return services.fail_stale_runs()
