"""The export reads one snapshot: writes committed while it runs are not seen, nor blocked.

These run outside the test transaction (transaction=True), because the snapshot is a
transaction of its own; on SQLite they also prove that the export does not hold the write lock.
"""

import threading

import pytest
from django.db import connection

from exports.options import ExportOptions
from exports.services import run_export
from labeling.models import Item
from tests.conftest import require_postgres
from tests.exports.builders import annotators, pair_item, rows, vote
from tests.factories import PairwiseProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def in_another_connection(work) -> None:
    """Run `work` in a thread, so on a connection (and a transaction) of its own."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported in the test's thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not errors, errors


def test_changes_committed_during_an_export_are_not_seen(tmp_path):
    # The export reads responses, then annotations, then items. Between the annotations and
    # the items another connection marks the first item a duplicate and commits: read in one
    # snapshot, the item is still active and both pairs are exported.
    project = PairwiseProjectFactory(slug="snapshot", overlap=1)
    [judge] = annotators("judge")
    items = [pair_item(project, f"s{n}", f"Prompt {n}?") for n in range(2)]
    for item in items:
        vote(item, judge, "a")

    def mark_duplicate() -> None:
        Item.objects.filter(pk=items[0].pk).update(status=Item.Status.DUPLICATE)

    def before_the_items_query(execute, sql, params, many, context):
        if 'FROM "labeling_item"' in sql and "EXISTS" in sql:
            in_another_connection(mark_duplicate)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(before_the_items_query):
        record = run_export(
            project=project,
            options=ExportOptions(format="dpo"),
            output=str(tmp_path / "pairs.jsonl"),
        )
    assert [r["id"] for r in rows(tmp_path / "pairs.jsonl")] == ["s0", "s1"]
    assert record.dropped["annotations"]["item_status"] == 0
    assert Item.objects.get(pk=items[0].pk).status == Item.Status.DUPLICATE


def test_postgres_reads_in_a_read_only_repeatable_read_transaction(tmp_path):
    require_postgres()
    project = PairwiseProjectFactory(slug="isolation", overlap=1)
    [judge] = annotators("judge")
    vote(pair_item(project, "i1", "Isolated?"), judge, "a")
    settings = []

    def look(done: int, total: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            settings.append(cursor.fetchone()[0])
            cursor.execute("SHOW transaction_read_only")
            settings.append(cursor.fetchone()[0])

    run_export(
        project=project,
        options=ExportOptions(format="dpo"),
        output=str(tmp_path / "pairs.jsonl"),
        progress=look,
    )
    assert settings == ["repeatable read", "on"]
