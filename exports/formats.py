"""Training formats: rows in, JSON objects out. Pure functions, no ORM.

The shapes are the ones TRL's trainers read as they are (docs/exports.md shows a row of each):
SFTTrainer takes `messages` (conversational) or `prompt`/`completion` (standard), DPOTrainer
`prompt`/`chosen`/`rejected`, KTOTrainer `prompt`/`completion`/`label`, RewardTrainer
`chosen`/`rejected` with an explicit `prompt` and an optional `margin`. In the conversational
style the prompt is a list of messages and each answer a one-message assistant turn; in the
standard style all of them are plain strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exports.rows import (
    AnnotationRecord,
    Completion,
    ItemRecord,
    Message,
    Preference,
    review_outcome,
)
from labeling.importing import json_string

CONVERSATIONAL = "conversational"
STANDARD = "standard"
STYLES = (CONVERSATIONAL, STANDARD)

Body = dict[str, Any]


def with_system(messages: Sequence[Message], metadata: Mapping[str, Any]) -> tuple[Message, ...]:
    """The item's conversation, with `metadata["system"]` first unless it starts with one.

    A system turn inside the conversation wins: it is what annotators were shown.
    """
    turns = tuple(Message(role=m["role"], content=m["content"]) for m in messages)
    system = metadata.get("system")
    if isinstance(system, str) and system.strip() and (not turns or turns[0]["role"] != "system"):
        return (Message(role="system", content=system), *turns)
    return turns


def representable(prompt: Sequence[Message], style: str) -> bool:
    """The standard style holds one user turn as a string: no system prompt, no history."""
    return style == CONVERSATIONAL or (len(prompt) == 1 and prompt[0]["role"] == "user")


def _prompt(prompt: Sequence[Message], style: str) -> str | list[Message]:
    return prompt[-1]["content"] if style == STANDARD else list(prompt)


def _answer(text: str, style: str) -> str | list[Message]:
    return text if style == STANDARD else [Message(role="assistant", content=text)]


def sft(row: Completion, style: str) -> Body:
    if style == STANDARD:
        return {"prompt": _prompt(row.prompt, style), "completion": row.text}
    return {"messages": [*row.prompt, Message(role="assistant", content=row.text)]}


def openai_sft(row: Completion, style: str = CONVERSATIONAL) -> Body:
    """OpenAI's chat fine-tuning line; the same shape as conversational `sft`."""
    return sft(row, CONVERSATIONAL)


def kto(row: Completion, style: str) -> Body:
    return {
        "prompt": _prompt(row.prompt, style),
        "completion": _answer(row.text, style),
        "label": row.desirable,
    }


def dpo(pair: Preference, style: str) -> Body:
    return {
        "prompt": _prompt(pair.prompt, style),
        "chosen": _answer(pair.chosen, style),
        "rejected": _answer(pair.rejected, style),
    }


def rm(pair: Preference, style: str) -> Body:
    """A reward-model pair: the DPO shape plus RewardTrainer's `margin` column."""
    return dpo(pair, style) | {"margin": pair.margin}


def openai_dpo(pair: Preference, style: str = CONVERSATIONAL) -> Body:
    return {
        "input": {"messages": list(pair.prompt)},
        "preferred_output": _answer(pair.chosen, CONVERSATIONAL),
        "non_preferred_output": _answer(pair.rejected, CONVERSATIONAL),
    }


def envelope(body: Body, *, key: str, meta: Mapping[str, Any], bare: bool) -> Body:
    """Add the row's `id` and `meta` unless bare (exactly the trainer's columns)."""
    return body if bare else body | {"id": key, "meta": dict(meta)}


def raw(item: ItemRecord, annotation: AnnotationRecord, *, pairwise: bool) -> Body:
    """One annotation as it was made, for analysis; pairwise and SFT fields by project kind."""
    row: Body = {
        "id": f"{item.key}/{annotation.id}",
        "item": item.key,
        "annotator": annotation.annotator_id,
        "guideline_version": annotation.guideline_version,
        "claimed_at": _timestamp(annotation.claimed_at),
        "submitted_at": _timestamp(annotation.created_at),
        "time_spent_ms": annotation.time_spent_ms,
    }
    outcome = review_outcome(item, annotation)
    if outcome is not None:  # only reviewed items carry the column (issue 5)
        row["review"] = outcome
    if pairwise:
        return row | {
            # The order the two responses were shown in, left first, in response terms.
            "shown_order": ["b", "a"] if annotation.swapped else ["a", "b"],
            "choice": annotation.choice,
            "strength": annotation.strength,
            "criteria": dict(annotation.criteria),
            "rationale": annotation.rationale,
        }
    return row | {
        "response": annotation.response_text,
        "draft": annotation.draft_text,
        "rating": annotation.rating,
        "flags": list(annotation.flags),
        "notes": annotation.notes,
    }


def _timestamp(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


PAIR_FORMATS = ("dpo", "rm", "openai-dpo", "kto")


class Encoded:
    """A row whose values are JSON already (name -> JSON text): `encode` only joins them."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields


def pair_rows(pair: Preference, format: str, style: str, *, bare: bool) -> list[Encoded]:
    """The rows of one pair, for `encode`: the bytes of `encode(envelope(dpo(pair, style),
    ...))` and the like, built from each text's JSON string, made once, instead of a dict per
    row; KTO gives the chosen answer as desirable and the other not. The JSON strings are most
    of an export's work (docs/benchmarks.md); tests/exports/test_formats.py compares the two."""
    meta = "" if bare else _meta_json(pair.meta)
    return pair_fields(
        pair.key, pair.prompt, pair.chosen, pair.rejected, pair.margin, meta, format, style, bare
    )


def pair_fields(
    key: str,
    prompt: Sequence[Message],
    chosen_text: str,
    rejected_text: str,
    margin: float,
    meta: str,
    format: str,
    style: str,
    bare: bool,
) -> list[Encoded]:
    """`pair_rows` from a pair's parts, `meta` as JSON already (`majority_meta_json`); no
    record is built."""
    answer = _answer_json(CONVERSATIONAL if format == "openai-dpo" else style)
    chosen, rejected = answer(chosen_text), answer(rejected_text)
    if format == "kto":
        prompt_json = _prompt_json(prompt, style)
        return [
            _line(
                {"prompt": prompt_json, "completion": chosen, "label": "true"},
                f"{key}/chosen",
                meta,
                bare,
            ),
            _line(
                {"prompt": prompt_json, "completion": rejected, "label": "false"},
                f"{key}/rejected",
                meta,
                bare,
            ),
        ]
    if format == "openai-dpo":
        fields = {
            "input": '{"messages":' + _messages_json(prompt) + "}",
            "preferred_output": chosen,
            "non_preferred_output": rejected,
        }
    else:
        fields = {"prompt": _prompt_json(prompt, style), "chosen": chosen, "rejected": rejected}
        if format == "rm":
            fields["margin"] = _dumps(margin)
    return [_line(fields, key, meta, bare)]


def _line(fields: dict[str, str], key: str, meta: str, bare: bool) -> Encoded:
    """`fields` with `id` and `meta` (JSON) unless bare."""
    if not bare:
        fields["id"] = _json(key)
        fields["meta"] = meta
    return Encoded(fields)


def _prompt_json(prompt: Sequence[Message], style: str) -> str:
    return _json(prompt[-1]["content"]) if style == STANDARD else _messages_json(prompt)


def _messages_json(messages: Sequence[Message]) -> str:
    turns = [f'{{"content":{_json(m["content"])},"role":{_json(m["role"])}}}' for m in messages]
    return "[" + ",".join(turns) + "]"


def _answer_json(style: str) -> Callable[[str], str]:
    if style == STANDARD:
        return _json
    return lambda text: '[{"content":' + _json(text) + ',"role":"assistant"}]'


def _json(value: Any) -> str:
    # json_string is json.dumps(text, ensure_ascii=False) for a str; anything else (a content
    # that is not a string in odd data) takes the general encoder.
    return json_string(value) if type(value) is str else _dumps(value)


# json.dumps(value, **these options) builds an encoder per call; one made once does the same.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
_dumps = _ENCODER.encode
MAJORITY_META = frozenset(("agreement", "chosen", "item", "strength", "votes"))
VOTE_KEYS = frozenset(("a", "b", "both_bad", "tie"))


def _meta_json(meta: Mapping[str, Any]) -> str:
    """`_dumps(meta)`; a majority pair's meta (most rows) is filled into a template instead."""
    votes = meta.get("votes")
    if (
        meta.keys() == MAJORITY_META
        and type(meta["item"]) is int
        and type(meta["chosen"]) is str
        and _finite(meta["agreement"])
        and _finite(meta["strength"])
        and type(votes) is dict
        and votes.keys() == VOTE_KEYS
        and all(type(count) is int for count in votes.values())
    ):
        return majority_meta_json(
            meta["item"],
            votes["a"],
            votes["b"],
            votes["tie"],
            votes["both_bad"],
            meta["agreement"],
            meta["chosen"],
            meta["strength"],
        )
    return _dumps(meta)


_CHOICE_JSON = {"a": '"a"', "b": '"b"'}


def majority_meta_json(
    item: int,
    a: int,
    b: int,
    tie: int,
    both_bad: int,
    agreement: float,
    chosen: str,
    strength: float,
) -> str:
    """The JSON of a majority pair's meta, {"item", "votes", "agreement", "chosen", "strength"}
    with int counts and finite floats, as `_dumps` writes it."""
    return (
        f'{{"agreement":{agreement!r},"chosen":{_CHOICE_JSON.get(chosen) or json_string(chosen)},'
        f'"item":{item},'
        f'"strength":{strength!r},"votes":{{"a":{a},"b":{b},"both_bad":{both_bad},"tie":{tie}}}}}'
    )


def _finite(value: Any) -> bool:
    # A float's repr is its JSON; NaN and infinities are refused, as allow_nan=False does.
    return type(value) is float and math.isfinite(value)


def _one_line(text: str) -> bytes:
    return (text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n").encode("utf-8")


def encode(row: Body | Encoded) -> bytes:
    """One JSON line: UTF-8, keys sorted, no spaces, so equal rows are equal bytes.

    U+2028/U+2029 are valid inside JSON strings, but Python's str.splitlines() and some
    JavaScript readers break lines on them; escaping keeps every row on exactly one line.
    """
    if type(row) is Encoded:
        # Names are plain identifiers (nothing to escape), sorted as json.dumps sorts keys.
        fields = row.fields
        text = "{" + ",".join([f'"{name}":{fields[name]}' for name in sorted(fields)]) + "}"
    else:
        text = _dumps(row)
    return _one_line(text)
