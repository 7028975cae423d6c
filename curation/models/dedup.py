"""Deduplication: runs, stored signatures and duplicate groups."""

__all__: list[str] = []
