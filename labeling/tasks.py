"""Celery tasks: thin wrappers that take ids and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from labeling.models import Project
from labeling.services import assignments, imports, reviews

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def release_expired_leases() -> int:
    """Reclaim lapsed leases. Each lease is released at most once, so reruns are harmless."""
    return assignments.release_expired_leases()


@shared_task(acks_late=True, serializer="json")
def run_import(job_id: int) -> None:
    """Run one import job. The job's status compare-and-set makes a redelivery a no-op."""
    imports.run_job(job_id=job_id)


@shared_task(acks_late=True, serializer="json")
def requeue_abandoned_imports() -> int:
    """Periodic: queue again the jobs whose worker died; each is taken over at most once."""
    job_ids = imports.abandoned_jobs()
    for job_id in job_ids:
        run_import.delay(job_id)
    return len(job_ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def triage_reviews() -> int:
    """Periodic: queue a triage of each project with new annotations. Harmless to repeat."""
    project_ids = reviews.projects_to_triage()
    for project_id in project_ids:
        triage_project.delay(project_id)
    return len(project_ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def triage_project(project_id: int) -> None:
    """Triage one project's newly finished items, a batch at a time; requeues while more are
    left. Idempotent, and safe beside another run: one review task per item, a growing marker."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        logger.info("triage.project_missing", extra={"project_id": project_id})
        return
    if not reviews.triage_recent(project=project):
        triage_project.delay(project_id)
