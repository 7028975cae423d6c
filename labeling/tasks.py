"""Celery tasks: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from labeling.services import assignments, imports


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def release_expired_leases() -> int:
    """Reclaim lapsed leases. Each lease is released at most once, so reruns are harmless."""
    return assignments.release_expired_leases()


@shared_task(acks_late=True, serializer="json")
def run_import(job_id: int) -> None:
    """Run one import job. The job's status compare-and-set makes a redelivery a no-op."""
    imports.run_job(job_id=job_id)
