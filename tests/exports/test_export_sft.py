"""SFT exports end to end: accepted responses, best of several, KTO labels."""

import pytest

from exports.errors import NoRows
from tests.exports.builders import annotators, answer, at, export, rows
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db

SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.fixture
def answered(answers_project):
    """s1: two 5s (bob's newer). s2: a 3 and a flagged 5. s3: a 4 flagged factual_error."""
    alice, bob = annotators("alice", "bob")
    s1 = ItemFactory(
        project=answers_project,
        external_id="s1",
        prompt="Explain LoRA.",
        metadata={"system": "Be brief."},
    )
    s2 = ItemFactory(project=answers_project, external_id="s2", prompt="Write a haiku.")
    s3 = ItemFactory(project=answers_project, external_id="s3", prompt="Say hi.")
    answer(s1, alice, "Low-rank adapters.", rating=5, minutes=1)
    answer(s1, bob, "Adapters.", rating=5, minutes=2)
    answer(s2, alice, "Old pond.", rating=3, minutes=3)
    answer(s2, bob, "Call me at 555.", rating=5, flags=("pii",), minutes=4)
    answer(s3, alice, "Hi!", rating=4, flags=("factual_error",), minutes=5)
    return {"s1": s1, "s2": s2, "s3": s3, "alice": alice, "bob": bob}


def test_sft_keeps_the_best_rated_and_newest_response(answers_project, answered, tmp_path):
    record = export(answers_project, tmp_path / "sft.jsonl", "sft")
    assert rows(tmp_path / "sft.jsonl") == [
        {
            "id": "s1",
            "messages": [
                SYSTEM,
                {"role": "user", "content": "Explain LoRA."},
                {"role": "assistant", "content": "Adapters."},
            ],
            "meta": {
                "item": answered["s1"].pk,
                "annotator": answered["bob"].pk,
                "guideline_version": None,
                "rating": 5,
                "accepted": 2,
            },
        }
    ]
    assert record.dropped == {
        "annotations": {
            "item_status": 0,
            "blocking_flag": 2,
            "unrated": 0,
            "min_rating": 1,
            "not_best": 1,
        },
        "items": {},
    }


def test_all_responses_keeps_every_accepted_one(answers_project, answered, tmp_path):
    export(answers_project, tmp_path / "sft.jsonl", "sft", all_responses=True)
    texts = [
        (r["id"].split("/")[0], r["messages"][-1]["content"]) for r in rows(tmp_path / "sft.jsonl")
    ]
    assert texts == [("s1", "Low-rank adapters."), ("s1", "Adapters.")]


def test_blocking_flags_and_min_rating_are_options(answers_project, answered, tmp_path):
    export(
        answers_project,
        tmp_path / "sft.jsonl",
        "sft",
        blocking_flags=("pii", "unsafe"),
        min_rating=3,
        style="standard",
    )
    assert rows(tmp_path / "sft.jsonl") == [
        {
            "id": "s2",
            "prompt": "Write a haiku.",
            "completion": "Old pond.",
            "meta": {
                "item": answered["s2"].pk,
                "annotator": answered["alice"].pk,
                "guideline_version": None,
                "rating": 3,
                "accepted": 1,
            },
        },
        {
            "id": "s3",
            "prompt": "Say hi.",
            "completion": "Hi!",
            "meta": {
                "item": answered["s3"].pk,
                "annotator": answered["alice"].pk,
                "guideline_version": None,
                "rating": 4,
                "accepted": 1,
            },
        },
    ]


def test_kto_labels_every_usable_response_by_rating(answers_project, answered, tmp_path):
    record = export(answers_project, tmp_path / "kto.jsonl", "kto", style="standard", bare=True)
    assert rows(tmp_path / "kto.jsonl") == [
        {"prompt": "Write a haiku.", "completion": "Old pond.", "label": False},
    ]
    assert record.dropped == {
        "annotations": {"item_status": 0, "blocking_flag": 2, "unrated": 0},
        "items": {"needs_conversational": 1},
    }


def test_openai_sft_rows_are_bare_messages(answers_project, answered, tmp_path):
    export(answers_project, tmp_path / "openai.jsonl", "openai-sft")
    assert rows(tmp_path / "openai.jsonl") == [
        {
            "messages": [
                SYSTEM,
                {"role": "user", "content": "Explain LoRA."},
                {"role": "assistant", "content": "Adapters."},
            ]
        }
    ]


def test_raw_sft_rows_hold_the_response_and_rating(answers_project, answered, tmp_path):
    export(answers_project, tmp_path / "raw.jsonl", "raw")
    exported = rows(tmp_path / "raw.jsonl")
    assert [(r["item"], r["response"], r["rating"], r["flags"]) for r in exported] == [
        ("s1", "Low-rank adapters.", 5, []),
        ("s1", "Adapters.", 5, []),
        ("s2", "Old pond.", 3, []),
        ("s2", "Call me at 555.", 5, ["pii"]),
        ("s3", "Hi!", 4, ["factual_error"]),
    ]


def test_no_accepted_response_is_an_error_naming_the_rules(answers_project, answered, tmp_path):
    with pytest.raises(NoRows) as raised:
        export(
            answers_project, tmp_path / "sft.jsonl", "sft", since=at(2), exclude_annotators=("bob",)
        )
    assert str(raised.value) == (
        "no rows to export: annotations left out by excluded_annotator (2), since (1), "
        "blocking_flag (1), min_rating (1)"
    )
    assert list(tmp_path.iterdir()) == []
