"""Celery tasks of deduplication (queue `cpu`): ids in, a service call, JSON only.

Each task is idempotent through its row's compare-and-set (see curation.dedup.services).
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from curation.dedup import services

logger = logging.getLogger(__name__)

RETRY = {
    "acks_late": True,
    "serializer": "json",
    "autoretry_for": (OperationalError,),  # the database went away for a moment
    "retry_backoff": True,
    "max_retries": 5,
    "soft_time_limit": 1800,
    "time_limit": 1900,
}

__all__ = ["merge_dedup", "plan_dedup", "resume_dedup_runs", "sign_dedup_batch"]


@shared_task(**RETRY)
def plan_dedup(run_id: int) -> None:
    """Cut a queued run into batches and queue them (or the merge, when nothing is new)."""
    batch_ids = services.plan(run_id=run_id)
    for batch_id in batch_ids:
        sign_dedup_batch.delay(batch_id)
    if not batch_ids:
        merge_dedup.delay(run_id)  # a no-op unless the run has nothing to sign


@shared_task(**RETRY)
def sign_dedup_batch(batch_id: int) -> None:
    """Sign one batch; the task that completes the last batch queues the merge."""
    from curation.models import DedupBatch

    if services.sign_batch(batch_id=batch_id):
        run_id = DedupBatch.objects.values_list("run_id", flat=True).get(pk=batch_id)
        merge_dedup.delay(run_id)


@shared_task(**RETRY)
def merge_dedup(run_id: int) -> None:
    """Verify the candidate pairs and write the groups; start a requested rerun after."""
    run = services.merge(run_id=run_id)
    if run is not None and run.rerun_requested:
        services.start_dedup(project=run.project, trigger=run.trigger)


@shared_task(**RETRY)
def resume_dedup_runs() -> int:
    """Queue again the steps of live runs that nobody holds a fresh claim on."""
    return services.resume_all()


@worker_ready.connect
def _resume_after_restart(sender: object = None, **kwargs: object) -> None:
    # A worker killed mid-step never acknowledges its message; with Redis the message comes
    # back only after the visibility timeout (hours), with the filesystem broker never. The
    # next worker to start queues the stalled steps again.
    resume_dedup_runs.delay()
