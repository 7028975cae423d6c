"""Deduplication after an import: a listener on labeling's `items_imported` signal."""

from __future__ import annotations

from typing import Any

from labeling.models import Project
from labeling.services.imports import items_imported


def dedup_after_import(sender: Any, *, project_id: int, **kwargs: Any) -> None:
    """Queue an incremental run for the project (or a rerun after the live one)."""
    from curation.dedup import services
    from curation.models import DedupRun

    project = Project.objects.get(pk=project_id)
    services.start_dedup(project=project, trigger=DedupRun.Trigger.IMPORT)


def connect() -> None:
    items_imported.connect(dedup_after_import, dispatch_uid="curation.dedup_after_import")
