"""Celery tasks of the curation app (queue `cpu`); each area keeps its tasks in its own module.

Celery's autodiscovery imports this module, so each area's tasks are imported here.
"""
