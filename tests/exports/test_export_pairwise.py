"""Pairwise exports end to end: exact rows for a small hand-judged project."""

import uuid

import pytest

from exports.errors import InvalidOptions
from labeling.models import Assignment, Item, Membership
from labeling.services import annotations, assignments
from tests.exports.builders import at, export, pair_item, rows, vote
from tests.factories import GuidelineFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(votes_project, judges):
    """q1: a a b. q2: b b tie. q3: a b both_bad. q4 (a duplicate): a a a. q5: a a (unfinished)."""
    alice, bob, carol = judges
    q1 = pair_item(votes_project, "q1", "What is 2+2?")
    q2 = pair_item(votes_project, "q2", "Name a prime.")
    q3 = pair_item(votes_project, "q3", "Capital of France?")
    q4 = pair_item(votes_project, "q4", "Spell cat.", status=Item.Status.DUPLICATE)
    q5 = pair_item(votes_project, "q5", "Still open?")
    vote(q1, alice, "a", strength=3, minutes=1)
    vote(q1, bob, "a", strength=1, minutes=2, swapped=True)
    vote(q1, carol, "b", strength=2, minutes=3)
    vote(q2, alice, "b", minutes=4)
    vote(q2, bob, "b", minutes=5)
    vote(q2, carol, "tie", minutes=6)
    vote(q3, alice, "a", minutes=7)
    vote(q3, bob, "b", minutes=8)
    vote(q3, carol, "both_bad", minutes=9)
    for minutes, judge in enumerate(judges, 10):
        vote(q4, judge, "a", minutes=minutes)
    vote(q5, alice, "a", minutes=20)
    vote(q5, bob, "a", minutes=21)
    return {"q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5}


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


def summary(path):
    return [(r["id"], r["meta"]["chosen"], r["meta"]["agreement"]) for r in rows(path)]


def test_dpo_keeps_majorities_of_fully_judged_items(votes_project, judged, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl")
    first, second = rows(tmp_path / "dpo.jsonl")
    assert first == {
        "id": "q1",
        "prompt": user("What is 2+2?"),
        "chosen": assistant("A: What is 2+2?"),
        "rejected": assistant("B: What is 2+2?"),
        "meta": {
            "item": judged["q1"].pk,
            "votes": {"a": 2, "b": 1, "tie": 0, "both_bad": 0},
            "agreement": 0.6667,
            "chosen": "a",
            "strength": 2.0,
        },
    }
    # q2's tie is a judgement (3 of 3) but not a vote: B wins 2 to 0.
    assert (second["id"], second["chosen"], second["meta"]["agreement"]) == (
        "q2",
        assistant("B: Name a prime."),
        1.0,
    )
    assert record.dropped == {
        "annotations": {"item_status": 3, "non_decisive": 2},
        "items": {"missing_responses": 0, "min_votes": 1, "no_majority": 1, "min_agreement": 0},
    }


def test_min_votes_lowered_lets_unfinished_items_through(votes_project, judged, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl", min_votes=2)
    assert summary(tmp_path / "dpo.jsonl") == [
        ("q1", "a", 0.6667),
        ("q2", "b", 1.0),
        ("q5", "a", 1.0),
    ]
    assert record.dropped["items"]["min_votes"] == 0


def test_ties_counted_as_half(votes_project, judged, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl", ties="count-as-half")
    assert summary(tmp_path / "dpo.jsonl") == [("q1", "a", 0.6667), ("q2", "b", 0.8333)]
    assert record.dropped == {
        "annotations": {"item_status": 3},
        "items": {"missing_responses": 0, "min_votes": 1, "no_majority": 1, "min_agreement": 0},
    }


def test_ties_drop_the_item(votes_project, judged, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl", ties="drop-item")
    assert summary(tmp_path / "dpo.jsonl") == [("q1", "a", 0.6667)]
    assert record.dropped["items"]["non_decisive_in_item"] == 2


def test_min_agreement_above_the_majority(votes_project, judged, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl", min_agreement=0.9)
    assert summary(tmp_path / "dpo.jsonl") == [("q2", "b", 1.0)]
    assert record.dropped["items"]["min_agreement"] == 1


def test_per_annotator_gives_each_decisive_judgement(votes_project, judged, judges, tmp_path):
    record = export(votes_project, tmp_path / "dpo.jsonl", per_annotator=True)
    exported = rows(tmp_path / "dpo.jsonl")
    q1_votes = judged["q1"].annotations.order_by("pk")
    alice, bob, carol = (judge.pk for judge in judges)
    assert [r["id"] for r in exported[:3]] == [f"q1/{a.pk}" for a in q1_votes]
    assert [(r["id"][:2], r["meta"]["annotator"], r["meta"]["chosen"]) for r in exported] == [
        ("q1", alice, "a"),
        ("q1", bob, "a"),
        ("q1", carol, "b"),
        ("q2", alice, "b"),
        ("q2", bob, "b"),
        ("q3", alice, "a"),
        ("q3", bob, "b"),
        ("q5", alice, "a"),
        ("q5", bob, "a"),
    ]
    assert record.dropped["annotations"] == {"item_status": 3, "non_decisive": 2}
    assert record.counts == {"train": 9}


def test_bare_rows_hold_only_the_trainer_columns(votes_project, judged, tmp_path):
    export(votes_project, tmp_path / "dpo.jsonl", bare=True)
    assert [sorted(r) for r in rows(tmp_path / "dpo.jsonl")] == [
        ["chosen", "prompt", "rejected"]
    ] * 2


def test_rm_standard_rows_carry_the_margin(votes_project, judged, tmp_path):
    export(votes_project, tmp_path / "rm.jsonl", "rm", style="standard", bare=True)
    assert rows(tmp_path / "rm.jsonl") == [
        {
            "prompt": "What is 2+2?",
            "chosen": "A: What is 2+2?",
            "rejected": "B: What is 2+2?",
            "margin": 2.0,  # the mean strength of the votes for A: 3 and 1
        },
        {
            "prompt": "Name a prime.",
            "chosen": "B: Name a prime.",
            "rejected": "A: Name a prime.",
            "margin": 2.0,
        },
    ]


def test_kto_from_pairs_gives_a_desirable_and_an_undesirable_row(votes_project, judged, tmp_path):
    export(votes_project, tmp_path / "kto.jsonl", "kto", bare=False)
    exported = rows(tmp_path / "kto.jsonl")
    assert [(r["id"], r["completion"], r["label"]) for r in exported] == [
        ("q1/chosen", assistant("A: What is 2+2?"), True),
        ("q1/rejected", assistant("B: What is 2+2?"), False),
        ("q2/chosen", assistant("B: Name a prime."), True),
        ("q2/rejected", assistant("A: Name a prime."), False),
    ]
    assert exported[0]["prompt"] == user("What is 2+2?")


def test_openai_dpo_rows(votes_project, judged, tmp_path):
    export(votes_project, tmp_path / "openai.jsonl", "openai-dpo")
    assert rows(tmp_path / "openai.jsonl")[0] == {
        "input": {"messages": user("What is 2+2?")},
        "preferred_output": assistant("A: What is 2+2?"),
        "non_preferred_output": assistant("B: What is 2+2?"),
    }
    assert len(rows(tmp_path / "openai.jsonl")) == 2


def test_raw_keeps_every_annotation_of_active_items(votes_project, judged, judges, tmp_path):
    export(votes_project, tmp_path / "raw.jsonl", "raw")
    exported = rows(tmp_path / "raw.jsonl")
    bobs_vote = judged["q1"].annotations.get(annotator=judges[1])
    assert len(exported) == 11
    assert exported[1] == {
        "id": f"q1/{bobs_vote.pk}",
        "item": "q1",
        "annotator": judges[1].pk,
        "guideline_version": None,
        "claimed_at": "2025-03-01T12:01:00+00:00",
        "submitted_at": "2025-03-01T12:02:00+00:00",
        "time_spent_ms": 0,
        "shown_order": ["b", "a"],
        "choice": "a",
        "strength": 1,
        "criteria": {},
        "rationale": "",
    }


def test_system_prompt_from_item_metadata_goes_first(votes_project, judges, tmp_path):
    item = pair_item(votes_project, "s1", "Hi", metadata={"system": "Be kind."})
    for judge in judges:
        vote(item, judge, "b")
    export(votes_project, tmp_path / "dpo.jsonl")
    [row] = rows(tmp_path / "dpo.jsonl")
    assert row["prompt"] == [{"role": "system", "content": "Be kind."}, *user("Hi")]


def test_standard_style_leaves_out_prompts_it_cannot_hold(votes_project, judges, tmp_path):
    plain = pair_item(votes_project, "p1", "Hi")
    system = pair_item(votes_project, "p2", "Hello", metadata={"system": "Be kind."})
    for judge in judges:
        vote(plain, judge, "a")
        vote(system, judge, "a")
    record = export(votes_project, tmp_path / "dpo.jsonl", style="standard")
    assert [r["prompt"] for r in rows(tmp_path / "dpo.jsonl")] == ["Hi"]
    assert record.dropped["items"]["needs_conversational"] == 1


def test_filters_by_annotator_guideline_and_date(votes_project, judges, tmp_path):
    alice, bob, carol = judges
    old, new = (
        GuidelineFactory(project=votes_project, number=1),
        GuidelineFactory(project=votes_project, number=2),
    )
    item = pair_item(votes_project, "f1", "Filter me")
    vote(item, alice, "a", guideline=old, minutes=0)
    vote(item, bob, "b", guideline=new, minutes=60)
    vote(item, carol, "b", guideline=new, minutes=61)
    record = export(
        votes_project,
        tmp_path / "dpo.jsonl",
        min_votes=1,
        guideline_version=2,
        exclude_annotators=("carol",),
        since=at(30),
    )
    [row] = rows(tmp_path / "dpo.jsonl")
    assert (row["meta"]["votes"], row["meta"]["chosen"]) == (
        {"a": 0, "b": 1, "tie": 0, "both_bad": 0},
        "b",
    )
    assert record.dropped["annotations"] == {
        "item_status": 0,
        "excluded_annotator": 1,
        "since": 1,
        "guideline_version": 0,
        "non_decisive": 0,
    }


def test_unknown_excluded_annotator_is_an_error(votes_project, judged, tmp_path):
    with pytest.raises(InvalidOptions, match="no user named nobody"):
        export(votes_project, tmp_path / "dpo.jsonl", exclude_annotators=("nobody",))
    assert not (tmp_path / "dpo.jsonl").exists()


def test_judgements_submitted_through_the_queue_export_in_response_terms(
    pairwise_project, annotator, other_annotator, tmp_path
):
    # Both annotators saw B on the left (swapped) and chose the left one: B wins.
    pair_item(pairwise_project, "z1", "Which is shorter?")
    for user in (annotator, other_annotator):
        member = Membership.objects.select_related("project").get(
            user=user, project=pairwise_project
        )
        lease = assignments.claim_next(membership=member)
        Assignment.objects.filter(pk=lease.pk).update(swapped=True)
        lease.swapped = True
        data = {"client_id": str(uuid.uuid4()), "choice": "left", "strength": 3}
        annotations.submit(assignment=lease, user=user, data=data)
    export(pairwise_project, tmp_path / "dpo.jsonl")
    [row] = rows(tmp_path / "dpo.jsonl")
    assert (row["chosen"], row["meta"]["votes"]["b"], row["meta"]["strength"]) == (
        assistant("B: Which is shorter?"),
        2,
        3.0,
    )
