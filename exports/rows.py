"""Plain data passed between reading, aggregation, splitting and formatting. No ORM.

The service turns database rows into these records; everything after that (policies, formats,
splits, the pipeline) works on them alone, so it is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

ACTIVE = "active"  # Item.Status.ACTIVE, repeated so that this module needs no Django


class Message(TypedDict):
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One submitted annotation. Pairwise choices are in response terms: "a" = position 0."""

    id: int
    annotator_id: int
    guideline_version: int | None
    created_at: datetime
    claimed_at: datetime | None = None
    swapped: bool = False
    time_spent_ms: int = 0
    choice: str = ""
    strength: int | None = None
    criteria: dict[str, str] = field(default_factory=dict)
    rationale: str = ""
    response_text: str = ""
    draft_text: str = ""
    rating: int | None = None
    flags: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item with its responses (by position) and its annotations (oldest first)."""

    id: int
    key: str  # the import's id, else "item-<pk>": what rows are named by
    prompt: tuple[Message, ...]  # the conversation to answer, a system prompt first if any
    group: str  # normalized prompt hash: items sharing it are exact duplicate prompts
    status: str = ACTIVE
    responses: tuple[str, ...] = ()
    annotations: tuple[AnnotationRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Preference:
    """One (prompt, chosen, rejected) pair, aggregated or from a single judgement."""

    key: str
    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    margin: float
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Completion:
    """One (prompt, completion) example; `desirable` is KTO's label."""

    key: str
    prompt: tuple[Message, ...]
    text: str
    meta: dict[str, Any]
    desirable: bool = True
