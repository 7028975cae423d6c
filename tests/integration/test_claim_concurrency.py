"""Claims racing for real: threads with their own database connections.

Runs on whichever database the suite runs on: SQLite (BEGIN IMMEDIATE + conditional UPDATE)
in the README's test command, PostgreSQL (FOR NO KEY UPDATE SKIP LOCKED) in CI's second pass.
"""

import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from labeling.models import Annotation, Assignment, Item, Membership
from labeling.services import annotations, assignments
from tests.conftest import require_postgres
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    PairwiseProjectFactory,
    UserFactory,
    pairwise_item,
)

ANNOTATORS = 8
ITEMS = 5


def _label_until_empty(membership: Membership, start: threading.Barrier, errors: list) -> None:
    try:
        start.wait()
        while (lease := assignments.claim_next(membership=membership)) is not None:
            data = {"client_id": str(uuid.uuid4()), "choice": "left", "strength": 1}
            annotations.submit(assignment=lease, user=membership.user, data=data)
    except Exception as error:
        errors.append(repr(error))
    finally:
        connections.close_all()


def _race(project) -> list[str]:
    members = []
    for n in range(ANNOTATORS):
        user = UserFactory(username=f"racer{n}")
        members.append(MembershipFactory(user=user, project=project))
    start, errors = threading.Barrier(ANNOTATORS), []
    threads = [
        threading.Thread(target=_label_until_empty, args=(m, start, errors)) for m in members
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 2])
def test_racing_annotators_never_over_assign(overlap):
    # given a few items and more annotators than slots
    project = PairwiseProjectFactory(overlap=overlap)
    items = [pairwise_item(project) for _ in range(ITEMS)]
    # when they all label as fast as they can
    errors = _race(project)
    # then every item got exactly `overlap` annotations by distinct annotators, nothing more
    assert errors == []
    per_item = Counter(Annotation.objects.values_list("item_id", flat=True))
    assert per_item == {item.pk: overlap for item in items}
    pairs = Counter(Assignment.objects.values_list("item_id", "annotator_id"))
    assert max(pairs.values()) == 1
    assert set(Item.objects.values_list("open_slots", flat=True)) == {0}
    assert Assignment.objects.filter(status="active").count() == 0


@pytest.mark.django_db(transaction=True)
def test_postgres_claim_locks_the_item_row_before_taking_the_slot():
    require_postgres()
    project = PairwiseProjectFactory(overlap=1)
    ItemFactory(project=project)
    member = MembershipFactory(user=UserFactory(username="locker"), project=project)
    with CaptureQueriesContext(connection) as context:
        assignments.claim_next(membership=member)
    sql = [q["sql"] for q in context.captured_queries]
    lock = next(i for i, s in enumerate(sql) if "FOR NO KEY UPDATE" in s)
    # The claim's SQL is written out (labeling.services.assignments): the item row, aliased
    # i, is the one locked, and only then is its slot taken.
    assert " FROM labeling_item i WHERE " in sql[lock]
    assert sql[lock].endswith(" FOR NO KEY UPDATE OF i SKIP LOCKED")
    update = next(
        i for i, s in enumerate(sql) if s.startswith("UPDATE labeling_item SET open_slots")
    )
    assert lock < update
