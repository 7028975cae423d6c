"""Leases: claim, heartbeat, skip, expire. Each write is one short transaction.

PostgreSQL: the claim locks one claimable item row with FOR NO KEY UPDATE SKIP LOCKED and takes
a slot from the quota kept on that row. SQLite has no row locks; the settings open every
transaction with BEGIN IMMEDIATE, which serializes writers, and the slot is taken by a
conditional UPDATE (open_slots > 0) in that transaction. The same code runs on both.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Model, OuterRef, QuerySet
from django.utils import timezone

from labeling import rows
from labeling.models import Assignment, Item, Membership

logger = logging.getLogger(__name__)

ACTIVE = Assignment.Status.ACTIVE
# The item fields a lease shows. A fresh claim loads them with the locked row (one row), so
# showing the lease costs no second query for the item.
SHOWN_FIELDS = ("external_id", "messages", "draft_response")


class QueueError(Exception):
    """Base for the queue's expected failures; views turn them into responses."""


class LeaseLost(QueueError):
    """The lease expired and was reclaimed, or was never the caller's."""

    def __init__(self, assignment: Assignment, *, item_open: bool) -> None:
        super().__init__("This item's lease has lapsed.")
        self.assignment = assignment
        self.item_open = item_open


class GuidelinesNotAcknowledged(QueueError):
    """A new guideline version must be acknowledged before the next item."""


class AnnotatorPaused(QueueError):
    """Gold accuracy fell below the project's threshold; an admin must resume the annotator."""

    def __init__(self, membership: Membership) -> None:
        super().__init__(
            "You are paused on this project: your accuracy on check items fell below "
            "the project's threshold. An admin has been told and can resume you."
        )
        self.membership = membership


def current_lease(*, membership: Membership) -> Assignment | None:
    """The annotator's live lease in the project, with its item, or None (a claim asks first)."""
    params = (membership.project_id, membership.user_id)
    found = rows.fetch_joined(_LEASE_ITEM, _LIVE_LEASE_FROM, params)
    if found is None:
        return None
    lease, item = found
    lease.item = item
    return lease


_LEASE_ITEM = ((Assignment, "a"), (Item, "i"))
_LIVE_LEASE_FROM = (
    "FROM labeling_assignment a JOIN labeling_item i ON i.id = a.item_id"
    " WHERE a.project_id = %s AND a.annotator_id = %s AND a.status = 'active'"
)


def claim_next(
    *, membership: Membership, renew: bool = True, rng: random.Random | None = None
) -> Assignment | None:
    """Renew the caller's live lease or lease a new item. Idempotent for reloads/double-clicks.

    `renew=False` is for a caller that has just closed the annotator's lease (submit, skip):
    it spares the lookup of a live lease, which then is rarely there. One made meanwhile (in
    another tab) still surfaces, through the one-live-lease constraint, and is renewed.
    `rng` draws gold vs regular (a seeded one makes the mix reproducible in tests).
    """
    try:
        return _claim(membership, look_first=renew, rng=rng or _random)
    except IntegrityError:
        # A concurrent claim by the same annotator won the one-live-lease constraint: theirs
        # is ours, so answer with it (renewed, when this claim had not looked for it).
        return current_lease(membership=membership) if renew else claim_next(membership=membership)


@transaction.atomic
def _claim(membership: Membership, *, look_first: bool, rng: random.Random) -> Assignment | None:
    project = membership.project
    until = timezone.now() + project.lease_duration
    # A held lease wins over the acknowledgement gate, so look for it whenever the gate is shut.
    if look_first or membership.needs_acknowledgement:
        held = current_lease(membership=membership)
        if held and Assignment.objects.filter(pk=held.pk, status=ACTIVE).update(expires_at=until):
            held.expires_at = until
            return held
    if membership.needs_acknowledgement:
        raise GuidelinesNotAcknowledged
    if membership.paused_at is not None:
        raise AnnotatorPaused(membership)
    # Gold or regular is drawn in Python first: a claim that is not a gold draw (nearly all)
    # runs exactly the queries it ran before gold existed.
    item = _lock_gold_item(membership) if draws_gold(project.gold_percent, rng) else None
    gold = item is not None
    with connection.cursor() as cursor:
        if item is None:
            item = _lock_next_item(cursor, membership)
            if item is None:
                return None
            # The row is locked (PostgreSQL) or the database is (SQLite); the condition keeps
            # the quota honest even if a future caller forgets the lock.
            cursor.execute(TAKE_SLOT, (item.pk,))
            if not cursor.rowcount:
                return None
        swapped = project.is_pairwise and project.randomize_order and _coin()
        return _insert_lease(cursor, membership, item, until, swapped=swapped, gold=gold)


# The hot claim's statements, written out: the ORM compiled the same ones on every request,
# most of a claim's Python time. Parameters travel apart (prepared once per connection on
# PostgreSQL); the claimable index's predicate (status, open_slots) is spelled in literals so
# that a generic plan can use that partial index. SQLite: the same SQL, without row locks
# (BEGIN IMMEDIATE serializes writers).
LOCK_NEXT = (
    "SELECT i.id, i.external_id, i.messages, i.draft_response FROM labeling_item i"
    " WHERE i.project_id = %s AND i.status = 'active' AND i.open_slots > 0 AND NOT EXISTS"
    " (SELECT 1 FROM labeling_assignment a WHERE a.item_id = i.id AND a.annotator_id = %s)"
    " ORDER BY i.priority DESC, i.id LIMIT 1"
)
SKIP_LOCKED = " FOR NO KEY UPDATE OF i SKIP LOCKED"
TAKE_SLOT = "UPDATE labeling_item SET open_slots = open_slots - 1 WHERE id = %s AND open_slots > 0"
INSERT_LEASE = (
    "INSERT INTO labeling_assignment (project_id, item_id, annotator_id, status, swapped, gold,"
    " expires_at, created_at, finished_at, skip_reason)"
    " VALUES (%s, %s, %s, 'active', %s, %s, %s, %s, NULL, '') RETURNING id"
)
_MESSAGES = Item._meta.get_field("messages")


def _lock_next_item(cursor: Any, membership: Membership) -> Item | None:
    """The next claimable item, row-locked, loaded with the fields a lease shows (one row)."""
    sql = LOCK_NEXT + SKIP_LOCKED if connection.vendor == "postgresql" else LOCK_NEXT
    cursor.execute(sql, (membership.project_id, membership.user_id))
    row = cursor.fetchone()
    if row is None:
        return None
    pk, external_id, messages, draft = row
    messages = _MESSAGES.from_db_value(messages, None, connection)  # type: ignore[arg-type]
    fields = ("id", "project_id", *SHOWN_FIELDS)
    values = (pk, membership.project_id, external_id, messages, draft)
    return Item.from_db(connection.alias, fields, values)


def _insert_lease(
    cursor: Any, membership: Membership, item: Item, until: datetime, *, swapped: bool, gold: bool
) -> Assignment:
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    params = (membership.project_id, item.pk, membership.user_id, swapped, gold)
    cursor.execute(INSERT_LEASE, (*params, adapt(until), adapt(now)))
    (pk,) = cursor.fetchone()
    lease = Assignment(
        pk=pk,
        project=membership.project,
        item=item,
        annotator_id=membership.user_id,
        status=ACTIVE,
        swapped=swapped,
        gold=gold,
        expires_at=until,
        created_at=now,
    )
    lease._state.adding = False
    lease._state.db = connection.alias
    return lease


M = TypeVar("M", bound=Model)


def lock_first(rows: QuerySet[M]) -> M | None:
    """The first of `rows`, row-locked, passing over rows that concurrent claims hold.

    The one claim primitive of every queue (items, gold items, review tasks): on PostgreSQL
    FOR NO KEY UPDATE SKIP LOCKED of the table itself, so claimers never wait on each other.
    """
    return rows.select_for_update(skip_locked=True, no_key=True, of=("self",)).first()


def draws_gold(percent: int, rng: random.Random) -> bool:
    """Whether this claim serves a gold item: `percent` in 100 claims, on average."""
    return percent > 0 and rng.random() * 100 < percent


def _lock_gold_item(membership: Membership) -> Item | None:
    # Gold items take no slot: every annotator answers each once, like any item they never saw.
    seen = Assignment.objects.filter(item=OuterRef("pk"), annotator_id=membership.user_id)
    return lock_first(
        Item.objects.filter(project_id=membership.project_id, status=Item.Status.GOLD)
        .filter(~Exists(seen))
        .order_by("pk")
        .only("pk", "project_id", *SHOWN_FIELDS)
    )


def _coin() -> bool:
    return random.random() < 0.5  # noqa: S311 - display order, not a secret


_random = random.Random()  # noqa: S311 - a mix of work, not a secret


def heartbeat(*, assignment: Assignment, user: Any) -> datetime:
    """Push the lease's expiry forward. Idempotent; raises LeaseLost once it was reclaimed."""
    until = timezone.now() + assignment.project.lease_duration
    renewed = Assignment.objects.filter(pk=assignment.pk, annotator=user, status=ACTIVE).update(
        expires_at=until
    )
    if not renewed:
        raise LeaseLost(assignment, item_open=item_is_open(assignment))
    return until


@transaction.atomic
def skip(*, assignment: Assignment, user: Any, reason: str) -> None:
    """Give the item back with a reason; the annotator will not see it again. Idempotent."""
    mine = Assignment.objects.filter(pk=assignment.pk, annotator=user, status=ACTIVE)
    closed = {"status": Assignment.Status.SKIPPED, "finished_at": timezone.now()}
    closed["skip_reason"] = reason[:200]
    # A gold lease took no slot, so it gives none back. The flag is part of the conditional
    # UPDATE, not read from memory: demoting a gold item turns its live gold leases into
    # slot-taking ones (labeling.services.gold.demote).
    if mine.filter(gold=False).update(**closed):
        Item.objects.filter(pk=assignment.item_id).update(open_slots=F("open_slots") + 1)
    elif mine.filter(gold=True).update(**closed):
        pass
    elif not Assignment.objects.filter(pk=assignment.pk, status=Assignment.Status.SKIPPED).exists():
        raise LeaseLost(assignment, item_open=item_is_open(assignment))


class _NoSlot(Exception):
    pass


def reacquire(assignment: Assignment) -> bool:
    """Take a lapsed lease back if its item still has a free slot (resubmit after a 409).

    Both updates are conditional, so this is safe against the reaper and against other
    claimers racing for the last slot; the savepoint undoes the revival when no slot is left.
    """
    until = timezone.now() + assignment.project.lease_duration
    try:
        with transaction.atomic():
            revived = Assignment.objects.filter(
                pk=assignment.pk, status=Assignment.Status.EXPIRED
            ).update(status=ACTIVE, expires_at=until, finished_at=None)
            if not revived:
                return False
            if not Item.objects.filter(
                pk=assignment.item_id, open_slots__gt=0, status="active"
            ).update(open_slots=F("open_slots") - 1):
                raise _NoSlot
    except (_NoSlot, IntegrityError):
        # IntegrityError: the annotator took another lease meanwhile (one live lease each).
        return False
    return True


def item_is_open(assignment: Assignment) -> bool:
    """Could a lapsed lease still be resubmitted? A free slot, and no other live lease held."""
    holds_another = Assignment.objects.filter(
        project_id=assignment.project_id, annotator_id=assignment.annotator_id, status=ACTIVE
    ).exclude(pk=assignment.pk)
    return (
        Item.objects.filter(pk=assignment.item_id, open_slots__gt=0, status="active").exists()
        and not holds_another.exists()
    )


def release_expired_leases(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Reclaim lapsed leases exactly once each: a slot goes back only if our UPDATE hit the row."""
    now = now or timezone.now()
    expired = (
        Assignment.objects.filter(status=ACTIVE, expires_at__lt=now)
        .order_by("item_id")
        .values_list("pk", "item_id")[:limit]
    )
    released = 0
    for pk, item_id in list(expired):
        with transaction.atomic():
            lapsed = Assignment.objects.filter(pk=pk, status=ACTIVE, expires_at__lt=now)
            closed = {"status": Assignment.Status.EXPIRED, "finished_at": now}
            # Only a slot-taking (non-gold) lease gives a slot back; see skip().
            if lapsed.filter(gold=False).update(**closed):
                Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") + 1)
                released += 1
            else:
                released += lapsed.filter(gold=True).update(**closed)
    if released:
        logger.info("leases.released", extra={"count": released})
    return released
