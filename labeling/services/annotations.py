"""Submitting work: validation against the project's label schema, then a compare-and-set.

Clients answer in screen terms (left/right); the service maps them to the stored responses
(A = position 0) with the lease's `swapped` flag, so the stored choice never depends on where a
response happened to be shown. The UI and the API share this one mapping.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling import rows
from labeling.models import Annotation, Assignment, Membership, Project
from labeling.services import gold
from labeling.services.assignments import LeaseLost, QueueError, item_is_open, reacquire

SIDES = ("left", "right", "tie", "both_bad")
STRENGTHS = {1: "slightly better", 2: "clearly better", 3: "much better"}
TEXT_LIMIT = 100_000
NOTE_LIMIT = 10_000
MAX_TIME_MS = 24 * 3600 * 1000


class InvalidAnnotation(Exception):
    """The submitted fields do not fit the project's schema; `errors` maps field to reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors.items()))
        self.errors = errors


class AlreadySubmitted(QueueError):
    """The lease was already submitted with another client id."""


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    created: bool


def submit(
    *,
    assignment: Assignment,
    user: Any,
    data: Mapping[str, Any],
    resubmit: bool = False,
    membership: Membership | None = None,
) -> SubmitResult:
    """Store the annotation for a lease. Idempotent by the client id: a repeat returns the first.

    With `resubmit`, a lapsed lease is taken back when its item still has a free slot, so
    nothing the annotator typed is lost. A caller holding the user's `membership` passes it:
    its acknowledged guideline is recorded without reading the row again.
    """
    fields = clean(assignment.project, data, swapped=assignment.swapped)
    try:
        return _submit(assignment, user, fields, resubmit=resubmit, membership=membership)
    except IntegrityError:
        # Two submits with the same client id raced; the loser answers with the winner's row.
        existing = Annotation.objects.filter(annotator=user, client_id=fields["client_id"]).first()
        if existing is None:
            raise
        return SubmitResult(existing, created=False)


@transaction.atomic
def _submit(
    assignment: Assignment,
    user: Any,
    fields: dict[str, Any],
    *,
    resubmit: bool,
    membership: Membership | None,
) -> SubmitResult:
    existing = _earlier_submit(assignment, user, fields["client_id"])
    if existing is not None:
        return SubmitResult(existing, created=False)
    if not _close_lease(assignment, user, resubmit=resubmit):
        # Blocked on the row, we may have waited for a twin submit with our client id.
        existing = _earlier_submit(assignment, user, fields["client_id"])
        if existing is not None:
            return SubmitResult(existing, created=False)
        _raise_lost(assignment)
    annotation = Annotation(
        assignment=assignment,
        project_id=assignment.project_id,
        item_id=assignment.item_id,
        annotator=user,
        guideline_id=_acknowledged(assignment, user, membership),
        **fields,
    )
    rows.insert(annotation)  # Annotation.objects.create, its INSERT compiled once
    if assignment.gold:
        # Graded at once, in this transaction, so that a pause holds from the next claim.
        gold.record_answer(annotation=annotation)
    return SubmitResult(annotation, created=True)


def _acknowledged(assignment: Assignment, user: Any, membership: Membership | None) -> int | None:
    """The guideline version the annotator works under: the one they last acknowledged."""
    if membership is not None:
        return membership.acknowledged_guideline_id
    return (
        Membership.objects.filter(project_id=assignment.project_id, user=user)
        .values_list("acknowledged_guideline_id", flat=True)
        .first()
    )


def _earlier_submit(assignment: Assignment, user: Any, client_id: uuid.UUID) -> Annotation | None:
    """The annotation an earlier submit with this client id made, if any."""
    # Nearly always there is none: ask for one column, and load the row only if there is.
    with connection.cursor() as cursor:
        cursor.execute(
            EARLIER_SUBMIT, (user.pk, _CLIENT_ID.get_db_prep_value(client_id, connection))
        )
        row = cursor.fetchone()
    if row is None:
        return None
    assignment_id = row[0]
    earlier = Annotation.objects.filter(annotator=user, client_id=client_id)
    if assignment_id != assignment.pk:
        # A client id names one submit of one lease; reusing it elsewhere is a client bug
        # that must not pass for success.
        raise InvalidAnnotation({"client_id": "already used for the submit of another item"})
    return earlier.get()


def _close_lease(assignment: Assignment, user: Any, *, resubmit: bool) -> bool:
    """Compare-and-set ACTIVE -> SUBMITTED; 0 rows means the lease is not ours any more."""
    params = (connection.ops.adapt_datetimefield_value(timezone.now()), assignment.pk, user.pk)
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_LEASE, params)
        if cursor.rowcount:
            return True
        if not (resubmit and reacquire(assignment)):
            return False
        cursor.execute(CLOSE_LEASE, params)
        return bool(cursor.rowcount)


# The submit's hot statements, written out (the ORM compiled them anew on every request); the
# same SQL on PostgreSQL and SQLite, with parameters adapted as the ORM would.
EARLIER_SUBMIT = (
    "SELECT assignment_id FROM labeling_annotation WHERE annotator_id = %s AND client_id = %s"
)
CLOSE_LEASE = (
    "UPDATE labeling_assignment SET status = 'submitted', finished_at = %s"
    " WHERE id = %s AND annotator_id = %s AND status = 'active'"
)
_CLIENT_ID = Annotation._meta.get_field("client_id")


def _raise_lost(assignment: Assignment) -> None:
    status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).first()
    if status == Assignment.Status.SUBMITTED:
        raise AlreadySubmitted("This item was already submitted.")
    raise LeaseLost(assignment, item_open=item_is_open(assignment))


def clean(project: Project, data: Mapping[str, Any], *, swapped: bool) -> dict[str, Any]:
    """Validate a submission against the project's schema; model fields in stored terms."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {
        "client_id": _client_id(data.get("client_id"), errors),
        "time_spent_ms": _integer(
            data.get("time_spent_ms", 0), "time_spent_ms", 0, MAX_TIME_MS, errors, default=0
        ),
    }
    if project.is_pairwise:
        fields |= _clean_pairwise(project, data, swapped, errors)
    else:
        fields |= _clean_sft(project, data, errors)
    if errors:
        raise InvalidAnnotation(errors)
    return fields


def _clean_sft(project: Project, data: Mapping[str, Any], errors: dict[str, str]) -> dict:
    response = _text(data.get("response"), "response", TEXT_LIMIT, errors)
    if not response.strip() and "response" not in errors:
        errors["response"] = "write a response (it may not be empty)"
    return {
        "response_text": response,
        "draft_text": _text(data.get("draft", ""), "draft", TEXT_LIMIT, errors),
        "rating": _integer(data.get("rating"), "rating", 1, project.rating_scale, errors),
        "flags": _flags(project, data.get("flags", []), errors),
        "notes": _text(data.get("notes", ""), "notes", NOTE_LIMIT, errors),
    }


def _clean_pairwise(
    project: Project, data: Mapping[str, Any], swapped: bool, errors: dict[str, str]
) -> dict:
    side = data.get("choice")
    if side not in SIDES:
        errors["choice"] = "choose one of left, right, tie, both_bad"
    preferred = side in ("left", "right")
    strength = data.get("strength")
    return {
        "choice": to_stored(side, swapped) if side in SIDES else "",
        "strength": _integer(strength, "strength", 1, 3, errors) if preferred else None,
        "rationale": _text(data.get("rationale", ""), "rationale", NOTE_LIMIT, errors),
        "criteria": _criteria(project, data.get("criteria", {}), swapped, errors),
    }


def to_stored(side: str, swapped: bool) -> str:
    """Screen side -> stored response letter ("a" = position 0)."""
    if side not in ("left", "right"):
        return side
    return "a" if (side == "left") != swapped else "b"


def to_screen(choice: str, swapped: bool) -> str:
    """Stored response letter -> screen side for one lease (inverse of to_stored)."""
    if choice not in ("a", "b"):
        return choice
    return "left" if (choice == "a") != swapped else "right"


def _criteria(project: Project, raw: Any, swapped: bool, errors: dict[str, str]) -> dict:
    if not isinstance(raw, Mapping):
        errors["criteria"] = "expected an object of criterion: left|right|tie"
        return {}
    unknown = sorted(set(raw) - set(project.criteria))
    if unknown:
        errors["criteria"] = f"unknown criteria: {', '.join(map(str, unknown))}"
    bad = sorted(str(k) for k, v in raw.items() if v not in ("left", "right", "tie", ""))
    if bad:
        errors["criteria"] = f"choose left, right or tie for: {', '.join(bad)}"
    return {k: to_stored(v, swapped) for k, v in raw.items() if v and k in project.criteria}


def _flags(project: Project, raw: Any, errors: dict[str, str]) -> list[str]:
    if not isinstance(raw, list | tuple) or not all(isinstance(f, str) for f in raw):
        errors["flags"] = "expected a list of flag names"
        return []
    unknown = sorted(set(raw) - set(project.flags))
    if unknown:
        errors["flags"] = f"unknown flags: {', '.join(unknown)}"
    return sorted(set(raw) & set(project.flags))


def _text(raw: Any, field: str, limit: int, errors: dict[str, str]) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        errors[field] = "expected text"
        return ""
    if len(raw) > limit:
        errors[field] = f"too long ({len(raw)} characters, at most {limit})"
    return raw.replace("\r\n", "\n")


def _integer(
    raw: Any, field: str, low: int, high: int, errors: dict[str, str], default: int | None = None
) -> int | None:
    if raw in (None, "") and default is not None:
        return default
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise TypeError(raw)
        value = int(raw)
    except (TypeError, ValueError):
        errors[field] = f"expected a whole number from {low} to {high}"
        return None
    if not low <= value <= high:
        errors[field] = f"{value} is outside {low}..{high}"
        return None
    return value


def _client_id(raw: Any, errors: dict[str, str]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        errors["client_id"] = "expected a UUID generated by the client for this submit"
        return None
