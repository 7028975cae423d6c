"""Votes counted by the database give what the records give: the same lines, drops and stats."""

import pytest

from exports import reading
from exports.options import ExportOptions
from exports.pipeline import Pipeline
from exports.services import prepare
from labeling.models import Item
from tests.exports.builders import at, pair_item, vote
from tests.factories import GuidelineFactory, ItemFactory, ResponseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(votes_project, judges):
    """Majorities, ties, both_bad, no strength, guideline versions, an inactive item, a system
    prompt from metadata, an item with one response and one with a single vote."""
    alice = judges[0]
    v1, v2 = (GuidelineFactory(project=votes_project, number=n) for n in (1, 2))
    system = {"metadata": {"system": "Be brief."}}
    items = [
        pair_item(votes_project, f"m{n}", f"Prompt {n}?", **(system if n == 3 else {}))
        for n in range(8)
    ]
    Item.objects.filter(pk=items[5].pk).update(status=Item.Status.DUPLICATE)
    lone = ItemFactory(project=votes_project, external_id="lone", prompt="Lone?")
    ResponseFactory(item=lone, position=0, text="Only one.")
    choices = ["a a b", "b b tie", "a b both_bad", "a a a", "tie tie a", "a a a", "b a b", "a"]
    for n, (item, votes) in enumerate(zip(items, choices, strict=True)):
        for m, (judge, choice) in enumerate(zip(judges, votes.split(), strict=False)):
            strength = None if (n + m) % 4 == 0 else 1 + (n + m) % 3
            guideline = (None, v1, v2)[(n + m) % 3]
            vote(item, judge, choice, strength=strength, guideline=guideline, minutes=n * 3 + m)
    vote(lone, alice, "a", minutes=40)
    return votes_project


OPTIONS = [
    ExportOptions(format="dpo"),
    ExportOptions(format="rm", ties="count-as-half", min_votes=1),
    ExportOptions(format="kto", ties="drop-item", bare=True),
    ExportOptions(format="openai-dpo", min_votes=2, min_agreement=0.6),
    ExportOptions(format="dpo", style="standard", min_votes=1, splits=(("test", 0.5),)),
    ExportOptions(format="dpo", min_votes=1, since=at(4), guideline_version=1),
    ExportOptions(format="dpo", min_votes=1, exclude_annotators=("bob",), guideline_version=2),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_counted_votes_export_what_the_records_export(mixed, options):
    _, spec = prepare(mixed, options)
    records, tallied = Pipeline(spec), Pipeline(spec)
    assert tallied.tallies
    expected = [
        line for item in reading.read_items(mixed, chunk_size=3) for line in records.lines(item)
    ]
    grouped = bool(spec.splitter.splits)
    counted = reading.read_tallied(mixed, spec.filters, grouped=grouped, chunk_size=3)
    lines = [line for item in counted for line in tallied.lines_of_tallied(item)]
    assert expected
    assert lines == expected
    assert tallied.stats.dropped.as_dict() == records.stats.dropped.as_dict()
    assert tallied.stats.versions() == records.stats.versions()
    assert tallied.stats.annotators == records.stats.annotators
    assert tallied.stats.agreement() == records.stats.agreement()
