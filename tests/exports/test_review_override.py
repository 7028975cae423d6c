"""Reviewer decisions win over votes and ratings in exports; gold items are never exported."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import AnnotationVerdict, ReviewTask
from labeling.services import gold, reviews
from tests.exports.builders import annotators, answer, export, pair_item, rows, vote
from tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita(db):
    return UserFactory(username="rita")


def decide(item, reviewer, decision, **fields):
    """A reviewer's decision through the service, on a lease taken directly."""
    task = ReviewTask.objects.create(
        project=item.project,
        item=item,
        reasons=["disagreement"],
        status="leased",
        reviewer=reviewer,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    data = {"client_id": str(uuid.uuid4()), "decision": decision, **fields}
    return reviews.submit(task=task, reviewer=reviewer, data=data).review


@pytest.fixture
def voted(votes_project, judges):
    """r1: a a b (majority a). r2: a a b. r3: a b tie. r4: a a a."""
    _alice, _bob, _carol = judges
    items = {
        key: pair_item(votes_project, key, f"Question {key}?") for key in ("r1", "r2", "r3", "r4")
    }
    for key, choices in {"r1": "aab", "r2": "aab", "r3": ("a", "b", "tie"), "r4": "aaa"}.items():
        for judge, choice in zip(judges, choices, strict=True):
            vote(items[key], judge, choice, strength=2)
    return items


def test_an_adjudicated_choice_replaces_the_majority_and_a_rejection_drops_the_item(
    votes_project, voted, rita, tmp_path
):
    decide(voted["r1"], rita, "adjudicate", choice="b")  # against the 2-1 majority for a
    decide(voted["r2"], rita, "reject")
    decide(voted["r3"], rita, "adjudicate", choice="a")  # no majority by votes; a by review
    decide(voted["r4"], rita, "accept")
    record = export(votes_project, tmp_path / "dpo.jsonl")
    got = rows(tmp_path / "dpo.jsonl")
    assert [(r["id"], r["meta"]["chosen"], r["chosen"][0]["content"]) for r in got] == [
        ("r1", "b", "B: Question r1?"),
        ("r3", "a", "A: Question r3?"),
        ("r4", "a", "A: Question r4?"),
    ]
    assert got[0]["meta"] == {
        "item": voted["r1"].pk,
        "votes": {"a": 2, "b": 1, "tie": 0, "both_bad": 0},
        "chosen": "b",
        "strength": 2.0,
        "adjudicated": True,
    }
    assert record.dropped["items"]["review_rejected"] == 1
    assert record.dropped["items"]["no_majority"] == 0


def test_an_adjudicated_tie_gives_no_pair(votes_project, voted, rita, tmp_path):
    decide(voted["r1"], rita, "adjudicate", choice="tie")
    record = export(votes_project, tmp_path / "dpo.jsonl")
    assert [r["id"] for r in rows(tmp_path / "dpo.jsonl")] == ["r2", "r4"]
    assert record.dropped["items"]["review_non_decisive"] == 1


def test_per_annotator_rows_keep_only_votes_that_agree_with_the_review(
    votes_project, voted, rita, tmp_path
):
    decide(voted["r1"], rita, "adjudicate", choice="b")
    decide(voted["r2"], rita, "reject")
    record = export(votes_project, tmp_path / "rm.jsonl", "rm", per_annotator=True)
    ids = [r["id"].split("/")[0] for r in rows(tmp_path / "rm.jsonl")]
    assert ids == ["r1", "r3", "r3", "r4", "r4", "r4"]
    assert record.dropped["annotations"]["review_overruled"] == 2
    assert record.dropped["items"]["review_rejected"] == 1


@pytest.fixture
def answered(answers_project):
    """t1: alice 5, bob 5 (bob newer). t2: alice 4, bob 5. t3: alice 2, bob 1."""
    alice, bob = annotators("alice", "bob")
    t = {key: ItemFactory(project=answers_project, external_id=key, prompt=f"Task {key}.")
         for key in ("t1", "t2", "t3")}  # fmt: skip
    answer(t["t1"], alice, "Alice one.", rating=5, minutes=1)
    answer(t["t1"], bob, "Bob one.", rating=5, minutes=2)
    answer(t["t2"], alice, "Alice two.", rating=4, minutes=3)
    bob_two = answer(t["t2"], bob, "Bob two.", rating=5, minutes=4)
    answer(t["t3"], alice, "Alice three.", rating=2, minutes=5)
    answer(t["t3"], bob, "Bob three.", rating=1, minutes=6)
    return t | {"bob_two": bob_two}


def completions(path):
    return [(r["id"], r["messages"][-1]["content"]) for r in rows(path)]


def test_sft_review_rejections_corrections_and_ties(answers_project, answered, rita, tmp_path):
    alice_one = answered["t1"].annotations.get(annotator__username="alice")
    bob_one = answered["t1"].annotations.get(annotator__username="bob")
    # t1: both rated 5, bob's newer; only alice's carries an accepted verdict (as if bob's came
    # in after the review), so the reviewed response wins the tie over the newer one
    decide(answered["t1"], rita, "accept", rejected=[])
    AnnotationVerdict.objects.filter(annotation=bob_one).delete()
    # t2: bob's 5 rejected, so alice's 4 is exported
    decide(answered["t2"], rita, "accept", rejected=[str(answered["bob_two"].pk)])
    # t3: both low; the reviewer writes the corrected response
    decide(answered["t3"], rita, "adjudicate", response="Corrected three.", comment="Fixed.")
    record = export(answers_project, tmp_path / "sft.jsonl", "sft", min_rating=4)
    assert completions(tmp_path / "sft.jsonl") == [
        ("t1", "Alice one."),
        ("t2", "Alice two."),
        ("t3", "Corrected three."),
    ]
    assert alice_one.verdict.accepted is True
    assert record.dropped["annotations"]["review_rejected"] == 1
    assert record.dropped["annotations"]["review_replaced"] == 2
    assert rows(tmp_path / "sft.jsonl")[2]["meta"] == {
        "item": answered["t3"].pk,
        "adjudicated": True,
        "reviewer": rita.pk,
    }


def test_a_rejected_sft_item_is_left_out_of_every_completion_format(
    answers_project, answered, rita, tmp_path
):
    decide(answered["t2"], rita, "reject", comment="Off topic.")
    record = export(answers_project, tmp_path / "kto.jsonl", "kto", min_rating=4)
    ids = [r["id"].split("/")[0] for r in rows(tmp_path / "kto.jsonl")]
    assert "t2" not in ids
    assert record.dropped["annotations"]["review_rejected"] == 2


def test_the_raw_export_carries_the_review_outcome(votes_project, voted, rita, tmp_path):
    review = decide(voted["r1"], rita, "adjudicate", choice="b", comment="B is right.")
    export(votes_project, tmp_path / "raw.jsonl", "raw")
    got = {r["id"]: r for r in rows(tmp_path / "raw.jsonl")}
    r1 = [r for key, r in got.items() if key.startswith("r1/")]
    assert [r["review"]["accepted"] for r in r1] == [False, False, True]
    assert r1[0]["review"] == {
        "decision": "adjudicate",
        "accepted": False,
        "choice": "b",
        "response": None,
        "reviewer": rita.pk,
        "comment": "B is right.",
        "reviewed_at": review.created_at.isoformat(),
    }
    assert not any("review" in r for key, r in got.items() if not key.startswith("r1/"))


def test_gold_items_are_never_exported(votes_project, voted, tmp_path):
    gold.mark_gold(item=voted["r4"], created_by=None, choice="a")
    record = export(votes_project, tmp_path / "dpo.jsonl")
    assert [r["id"] for r in rows(tmp_path / "dpo.jsonl")] == ["r1", "r2"]
    assert record.dropped["annotations"]["item_status"] == 3
    export(votes_project, tmp_path / "raw.jsonl", "raw")
    assert not [r for r in rows(tmp_path / "raw.jsonl") if r["item"] == "r4"]
