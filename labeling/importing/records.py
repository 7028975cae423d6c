"""Validating one decoded record and normalizing it into an ItemRecord. No I/O, no ORM.

A record that does not fit raises InvalidRecord naming the field, so that every bad line of a
file can be listed; HH-RLHF "chosen"/"rejected" transcripts become ordinary pairwise records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypedDict

from labeling.importing.hashing import digest_normalized, normalize_text

SFT = "sft"
PAIRWISE = "pairwise"
FIELDS = ("id", "prompt", "messages", "response", "responses", "metadata")
HH_FIELDS = ("chosen", "rejected")
KNOWN_FIELDS = frozenset(FIELDS + HH_FIELDS)
ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
MAX_MODEL_LENGTH = 200
HH_LABELS = {"responses": "chosen/rejected", "responses[0]": "chosen", "responses[1]": "rejected"}
# HH-RLHF transcripts: "\n\nHuman: ...\n\nAssistant: ..." (the space after the colon is
# missing where a turn is empty).
HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class ItemRecord(TypedDict):
    external_id: str
    messages: list[dict[str, str]]
    prompt: str
    draft_response: str
    metadata: dict[str, Any]
    responses: list[tuple[str, str]]  # (model, text), in the order imported
    content_hash: str


Build = Callable[[Any], ItemRecord]


class ParsedLine(NamedTuple):
    """One record of the file: `number` is the 1-based physical line where it starts."""

    number: int
    record: ItemRecord | None
    error: str | None


class InvalidRecord(ValueError):
    """A record does not fit the format; `field` names the culprit (None: the whole record)."""

    def __init__(self, field: str | None, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f'"{field}" {problem}' if field else problem)


class UnreadableFile(ValueError):
    """The file cannot be read past `line`: skipping bad lines cannot help."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


def build_record(raw: Any, *, kind: str) -> ItemRecord:
    """Validate one decoded record for a project of `kind` and normalize it.

    A field set to null counts as absent. Raises InvalidRecord naming the field.
    """
    if not isinstance(raw, dict):
        raise InvalidRecord(None, f"expected a JSON object, got {_json_type(raw)}")
    fields = {key: value for key, value in raw.items() if value is not None}
    _check_keys(fields)
    if "chosen" in fields or "rejected" in fields:
        with labelled(HH_LABELS):
            return _build(_from_hh_rlhf(fields, kind), kind)
    return _build(fields, kind)


def _build(fields: dict[str, Any], kind: str) -> ItemRecord:
    messages = _messages(fields)
    responses = _responses(fields, kind)
    return {
        "external_id": _external_id(fields.get("id")),
        "messages": messages,
        "prompt": messages[-1]["content"],
        "draft_response": _draft(fields, kind),
        "metadata": _metadata(fields.get("metadata")),
        "responses": responses,
        "content_hash": _content(messages, responses),
    }


def _content(messages: list[dict[str, str]], responses: list[tuple[str, str]]) -> str:
    texts = [normalize_text(text) for _, text in responses]
    if len(texts) == 2 and texts[0] == texts[1]:
        raise InvalidRecord("responses", "holds the same text twice")
    return digest_normalized(messages, texts)


@contextmanager
def labelled(names: dict[str, str]) -> Iterator[None]:
    """Name fields in errors the way the file does (CSV columns, HH-RLHF sides)."""
    try:
        yield
    except InvalidRecord as problem:
        field = names.get(problem.field or "", problem.field)
        raise InvalidRecord(field, problem.problem) from None


def _check_keys(fields: dict[str, Any]) -> None:
    if not KNOWN_FIELDS.issuperset(fields):
        unknown = [key for key in fields if key not in KNOWN_FIELDS]
        allowed = ", ".join(FIELDS)
        raise InvalidRecord(None, f'unknown field "{unknown[0]}" (the fields are {allowed})')
    if "prompt" in fields and "messages" in fields:
        raise InvalidRecord(None, 'give "prompt" or "messages", not both')


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _messages(fields: dict[str, Any]) -> list[dict[str, str]]:
    if "prompt" in fields:
        return [{"role": "user", "content": _text(fields["prompt"], "prompt")}]
    if "messages" not in fields:
        raise InvalidRecord(None, 'give "prompt" or "messages"')
    turns = fields["messages"]
    if not isinstance(turns, list) or not turns:
        raise InvalidRecord("messages", 'must be a non-empty list of {"role", "content"} objects')
    messages = [_turn(turn, index) for index, turn in enumerate(turns)]
    if messages[-1]["role"] != "user":
        # The annotator (SFT) or the two candidates (pairwise) answer the conversation.
        raise InvalidRecord("messages", f'must end with a user turn, got "{messages[-1]["role"]}"')
    return messages


def _turn(turn: Any, index: int) -> dict[str, str]:
    name = f"messages[{index}]"
    if not isinstance(turn, dict):
        raise InvalidRecord(name, 'must be an object with "role" and "content"')
    extra = [key for key in turn if key not in ("role", "content")]
    if extra:
        raise InvalidRecord(name, f'has unknown field "{extra[0]}"')
    role = turn.get("role")
    if role not in ROLES:
        raise InvalidRecord(f"{name}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "system" and index > 0:
        raise InvalidRecord(f"{name}.role", 'may be "system" only in the first message')
    return {"role": role, "content": _text(turn.get("content"), f"{name}.content")}


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or value.isspace():  # isspace: no copy
        raise InvalidRecord(field, "must be a non-empty string")
    return value


def _responses(fields: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    value = fields.get("responses")
    if kind != PAIRWISE:
        if value is not None:
            raise InvalidRecord("responses", 'is for pairwise projects; SFT takes a "response"')
        return []
    if value is None:
        raise InvalidRecord("responses", "is required in a pairwise project (2 responses)")
    if not isinstance(value, list):
        raise InvalidRecord("responses", "must be a list of 2 responses")
    if len(value) != 2:
        raise InvalidRecord("responses", f"must hold exactly 2 responses, got {len(value)}")
    return [_response(item, index) for index, item in enumerate(value)]


def _response(item: Any, index: int) -> tuple[str, str]:
    name = f"responses[{index}]"
    if isinstance(item, str):
        return "", _text(item, name)
    if not isinstance(item, dict):
        raise InvalidRecord(name, 'must be a string or an object with "text"')
    extra = [key for key in item if key not in ("text", "model")]
    if extra:
        raise InvalidRecord(name, f'has unknown field "{extra[0]}"')
    model = item.get("model") or ""
    if not isinstance(model, str) or len(model) > MAX_MODEL_LENGTH:
        raise InvalidRecord(f"{name}.model", f"must be a string of {MAX_MODEL_LENGTH} or fewer")
    return model.strip(), _text(item.get("text"), f"{name}.text")


def _draft(fields: dict[str, Any], kind: str) -> str:
    draft = fields.get("response", "")
    if draft and kind == PAIRWISE:
        raise InvalidRecord("response", 'is an SFT draft; a pairwise item takes "responses"')
    if not isinstance(draft, str):
        raise InvalidRecord("response", "must be a string")
    return draft


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("metadata", "must be a JSON object")
    return value


def _external_id(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord("id", "must be a string or an integer")
    external_id = str(value).strip()
    if not external_id:
        raise InvalidRecord("id", "must not be empty")
    if len(external_id) > MAX_ID_LENGTH:
        raise InvalidRecord("id", f"is longer than {MAX_ID_LENGTH} characters")
    return external_id


# HH-RLHF ------------------------------------------------------------------------------------


def _from_hh_rlhf(fields: dict[str, Any], kind: str) -> dict[str, Any]:
    """An HH-RLHF pair as a plain record: the shared turns, then chosen (A) and rejected (B)."""
    clash = [key for key in ("prompt", "messages", "response", "responses") if key in fields]
    if clash:
        raise InvalidRecord(None, f'"chosen"/"rejected" cannot be combined with "{clash[0]}"')
    if kind != PAIRWISE:
        raise InvalidRecord(None, '"chosen"/"rejected" pairs are for pairwise projects')
    chosen = _hh_turns(fields.get("chosen"), "chosen")
    rejected = _hh_turns(fields.get("rejected"), "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise InvalidRecord(None, '"chosen" and "rejected" must share all turns but the last')
    metadata = _metadata(fields.get("metadata"))
    return {
        "id": fields.get("id"),
        "messages": [{"role": role, "content": text} for role, text in chosen[:-1]],
        "responses": [chosen[-1][1], rejected[-1][1]],
        "metadata": {**metadata, "source_format": "hh-rlhf", "chosen_position": 0},
    }


def _hh_turns(value: Any, field: str) -> list[tuple[str, str]]:
    if value is None:
        raise InvalidRecord(field, 'is missing: an HH-RLHF pair has "chosen" and "rejected"')
    if not isinstance(value, str):
        raise InvalidRecord(field, "must be a string")
    parts = HH_TURN.split(value if value.startswith("\n\n") else "\n\n" + value)
    if len(parts) < 5 or parts[0].strip():
        raise InvalidRecord(field, 'must be a transcript of "Human:" and "Assistant:" turns')
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    turns = [(HH_ROLES[who], text.strip()) for who, text in pairs]
    if turns[-1][0] != "assistant":
        raise InvalidRecord(field, 'must end with an "Assistant:" turn')
    if not turns[-1][1]:
        raise InvalidRecord(field, 'ends with an empty "Assistant:" turn')
    return turns
