"""Plain data passed between reading, aggregation, splitting and formatting. No ORM.

The service turns database rows into these records; everything after that (policies, formats,
splits, the pipeline) works on them alone, so it is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

ACTIVE = "active"  # Item.Status.ACTIVE, repeated so that this module needs no Django
# Review.Decision, repeated for the same reason.
ACCEPT = "accept"
REJECT = "reject"
ADJUDICATE = "adjudicate"


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
    # A review's verdict on this annotation: True accepted, False rejected, None not reviewed.
    verdict: bool | None = None


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """A reviewer's decision on an item; an adjudication carries the label that replaces votes."""

    decision: str  # ACCEPT | REJECT | ADJUDICATE
    choice: str = ""  # pairwise adjudication, in response terms
    response_text: str = ""  # SFT adjudication: the corrected response
    reviewer_id: int | None = None
    created_at: datetime | None = None
    comment: str = ""


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
    review: ReviewRecord | None = None


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


def review_outcome(item: ItemRecord, annotation: AnnotationRecord) -> dict[str, Any] | None:
    """The raw export's `review` column: the item's review and its verdict on this annotation;
    None for an item nobody reviewed."""
    review = item.review
    if review is None:
        return None
    return {
        "decision": review.decision,
        "accepted": annotation.verdict,
        "choice": review.choice or None,
        "response": review.response_text or None,
        "reviewer": review.reviewer_id,
        "comment": review.comment,
        "reviewed_at": None if review.created_at is None else review.created_at.isoformat(),
    }
