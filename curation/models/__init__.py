"""Curation's tables: deduplication runs and groups, agreement reports."""

from curation.models.agreement import *  # noqa: F403
from curation.models.dedup import *  # noqa: F403
