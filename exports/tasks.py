"""Celery tasks: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from exports import jobs


@shared_task(acks_late=True, serializer="json")
def run_export_job(export_id: int) -> None:
    """Run one export job. The job's status compare-and-set makes a redelivery a no-op."""
    jobs.run_job(export_id=export_id)


@shared_task(acks_late=True, serializer="json")
def requeue_abandoned_exports() -> int:
    """Periodic: queue again the jobs whose worker died; each is taken over at most once."""
    export_ids = jobs.abandoned_jobs()
    for export_id in export_ids:
        run_export_job.delay(export_id)
    return len(export_ids)
