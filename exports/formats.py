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
from collections.abc import Mapping, Sequence
from typing import Any

from exports.rows import (
    AnnotationRecord,
    Completion,
    ItemRecord,
    Message,
    Preference,
    review_outcome,
)

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


def encode(row: Body) -> bytes:
    """One JSON line: UTF-8, keys sorted, no spaces, so equal rows are equal bytes.

    U+2028/U+2029 are valid inside JSON strings, but Python's str.splitlines() and some
    JavaScript readers break lines on them; escaping keeps every row on exactly one line.
    """
    text = json.dumps(
        row, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return (text + "\n").encode("utf-8")
