"""Celery tasks of the curation app (queue `cpu`); each area keeps its tasks in its own module.

Celery's autodiscovery imports this module, so each area's tasks are imported here.
"""

from curation.agreement.tasks import enqueue_due_agreement, refresh_agreement  # noqa: F401
from curation.dedup.tasks import *  # noqa: F403
