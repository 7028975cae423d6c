"""Formats: rows in, the exact objects TRL and OpenAI read out. No database."""

import itertools
import json
from datetime import UTC, datetime

from exports import formats
from exports.rows import AnnotationRecord, Completion, ItemRecord, Preference

USER = {"role": "user", "content": "Explain LoRA in one line."}
SYSTEM = {"role": "system", "content": "Be brief."}
PAIR = Preference("q-1", (USER,), "Low-rank adapters.", "A kind of radio.", 2.0, {"agreement": 1.0})
COMPLETION = Completion("q-2", (USER,), "Low-rank adapters.", {"rating": 5})


def test_system_prompt_from_metadata_goes_first():
    prompt = formats.with_system([USER], {"system": "Be brief."})
    assert prompt == (SYSTEM, USER)


def test_system_turn_of_the_conversation_wins_over_metadata():
    prompt = formats.with_system([SYSTEM, USER], {"system": "Ignored."})
    assert prompt == (SYSTEM, USER)


def test_blank_or_non_text_metadata_system_is_ignored():
    assert formats.with_system([USER], {"system": "  "}) == (USER,)
    assert formats.with_system([USER], {"system": ["x"]}) == (USER,)


def test_standard_style_represents_one_user_turn_only():
    assert formats.representable((USER,), formats.STANDARD) is True
    assert formats.representable((SYSTEM, USER), formats.STANDARD) is False
    assert formats.representable((SYSTEM, USER), formats.CONVERSATIONAL) is True


def test_sft_conversational_is_messages_ending_with_the_answer():
    assert formats.sft(COMPLETION, formats.CONVERSATIONAL) == {
        "messages": [USER, {"role": "assistant", "content": "Low-rank adapters."}]
    }


def test_sft_standard_is_prompt_and_completion_strings():
    assert formats.sft(COMPLETION, formats.STANDARD) == {
        "prompt": "Explain LoRA in one line.",
        "completion": "Low-rank adapters.",
    }


def test_openai_sft_is_conversational_whatever_the_style():
    assert formats.openai_sft(COMPLETION) == formats.sft(COMPLETION, formats.CONVERSATIONAL)


def test_dpo_conversational_has_assistant_turns():
    assert formats.dpo(PAIR, formats.CONVERSATIONAL) == {
        "prompt": [USER],
        "chosen": [{"role": "assistant", "content": "Low-rank adapters."}],
        "rejected": [{"role": "assistant", "content": "A kind of radio."}],
    }


def test_dpo_standard_is_plain_strings():
    assert formats.dpo(PAIR, formats.STANDARD) == {
        "prompt": "Explain LoRA in one line.",
        "chosen": "Low-rank adapters.",
        "rejected": "A kind of radio.",
    }


def test_rm_adds_the_margin_to_the_pair():
    assert formats.rm(PAIR, formats.STANDARD) == {
        "prompt": "Explain LoRA in one line.",
        "chosen": "Low-rank adapters.",
        "rejected": "A kind of radio.",
        "margin": 2.0,
    }


def test_kto_carries_the_label():
    undesirable = Completion("q-3", (SYSTEM, USER), "No idea.", {}, desirable=False)
    assert formats.kto(undesirable, formats.CONVERSATIONAL) == {
        "prompt": [SYSTEM, USER],
        "completion": [{"role": "assistant", "content": "No idea."}],
        "label": False,
    }


def test_openai_dpo_shape():
    assert formats.openai_dpo(PAIR) == {
        "input": {"messages": [USER]},
        "preferred_output": [{"role": "assistant", "content": "Low-rank adapters."}],
        "non_preferred_output": [{"role": "assistant", "content": "A kind of radio."}],
    }


def test_envelope_adds_id_and_meta_unless_bare():
    body = {"prompt": "p"}
    assert formats.envelope(body, key="q-1", meta={"n": 1}, bare=False) == {
        "prompt": "p",
        "id": "q-1",
        "meta": {"n": 1},
    }
    assert formats.envelope(body, key="q-1", meta={"n": 1}, bare=True) == {"prompt": "p"}


def test_raw_pairwise_row_keeps_the_shown_order_and_every_field():
    moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    annotation = AnnotationRecord(
        id=7,
        annotator_id=3,
        guideline_version=2,
        created_at=moment,
        claimed_at=moment,
        swapped=True,
        time_spent_ms=8000,
        choice="b",
        strength=3,
        criteria={"honesty": "tie"},
        rationale="Clearer.",
    )
    item = ItemRecord(1, "q-1", (USER,), "g", responses=("x", "y"), annotations=(annotation,))
    assert formats.raw(item, annotation, pairwise=True) == {
        "id": "q-1/7",
        "item": "q-1",
        "annotator": 3,
        "guideline_version": 2,
        "claimed_at": "2025-03-01T12:00:00+00:00",
        "submitted_at": "2025-03-01T12:00:00+00:00",
        "time_spent_ms": 8000,
        "shown_order": ["b", "a"],
        "choice": "b",
        "strength": 3,
        "criteria": {"honesty": "tie"},
        "rationale": "Clearer.",
    }


def test_raw_sft_row_has_the_response_rating_and_flags():
    moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    annotation = AnnotationRecord(
        id=8,
        annotator_id=3,
        guideline_version=None,
        created_at=moment,
        response_text="Paris.",
        draft_text="paris",
        rating=4,
        flags=("pii",),
        notes="short",
    )
    item = ItemRecord(2, "item-2", (USER,), "g", annotations=(annotation,))
    row = formats.raw(item, annotation, pairwise=False)
    assert (row["response"], row["draft"], row["rating"]) == ("Paris.", "paris", 4)
    assert (row["flags"], row["notes"], row["claimed_at"]) == (["pii"], "short", None)
    assert "choice" not in row


def test_encode_is_sorted_compact_utf8_and_one_line():
    line = formats.encode({"b": "ß\u2028", "a": 1.0})
    assert line == b'{"a":1.0,"b":"\xc3\x9f\\u2028"}\n'
    assert json.loads(line) == {"a": 1.0, "b": "ß\u2028"}
    assert line.decode().splitlines() == [line.decode().rstrip("\n")]


TRICKY = 'Quote " backslash \\ tab\t newline\n nul\x00 é 字 \u2028 \u2029 \U0001f600 \x7f \xa0'
PAIR_FORMATS = {"dpo": formats.dpo, "rm": formats.rm, "openai-dpo": formats.openai_dpo}


def _reference_lines(pair: Preference, name: str, style: str, bare: bool) -> list[bytes]:
    """What the exporter wrote before pair_rows: a body dict per row, json.dumps'd."""
    if name == "kto":
        sides = ((pair.chosen, "chosen", True), (pair.rejected, "rejected", False))
        rows = [Completion(f"{pair.key}/{n}", pair.prompt, t, pair.meta, d) for t, n, d in sides]
        bodies = [(formats.kto(row, style), row.key) for row in rows]
    else:
        bodies = [(PAIR_FORMATS[name](pair, style), pair.key)]
    return [
        formats.encode(formats.envelope(body, key=key, meta=pair.meta, bare=bare))
        for body, key in bodies
    ]


def test_pair_rows_encode_to_the_bytes_of_the_body_dicts():
    votes = {"a": 2, "b": 1, "tie": 0, "both_bad": 0}
    majority = {"item": 7, "votes": votes, "agreement": 0.6667, "chosen": "a", "strength": 2.0}
    metas = [
        majority,
        majority | {"agreement": 1, "chosen": TRICKY},  # an int: not the template's shape
        {"item": 7, "votes": votes, "note": TRICKY, "adjudicated": True, "x": 1.5},
    ]
    prompts = [(USER,), ({"role": "user", "content": TRICKY},), (SYSTEM, USER)]
    for prompt, meta in itertools.product(prompts, metas):
        pair = Preference(f"k/{TRICKY}", prompt, TRICKY, "B\u2028", 0.6667, meta)
        for name in ("dpo", "rm", "openai-dpo", "kto"):
            for style in (formats.CONVERSATIONAL, formats.STANDARD):
                for bare in (True, False):
                    rows = formats.pair_rows(pair, name, style, bare=bare)
                    expected = _reference_lines(pair, name, style, bare)
                    assert [formats.encode(row) for row in rows] == expected
                    assert all(line.count(b"\n") == 1 for line in expected)
