"""Celery tasks of the agreement statistics: ids in, a service call, nothing returned but ids."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from curation.agreement import services
from labeling.models import Project

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=600,
    time_limit=660,
)
def refresh_agreement(project_id: int, force: bool = False) -> int | None:
    """Recompute one project's agreement report; the run guard makes duplicates no-ops."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        logger.info("agreement.project_missing", extra={"project_id": project_id})
        return None
    stored = services.refresh(project=project, force=force)
    return None if stored is None else stored.pk


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=60,
    time_limit=90,
)
def enqueue_due_agreement() -> list[int]:
    """Periodic: enqueue a refresh for each project with annotations newer than its report."""
    due = services.due_projects()
    for project_id in due:
        refresh_agreement.delay(project_id)
    return due
