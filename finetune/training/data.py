"""Export files in, trainer rows out: shape checks, rows dropped with reasons, token counts.

Reads the JSONL that `manage.py export` writes (docs/exports.md) and keeps exactly the columns
TRL reads: SFT `messages` or `prompt`/`completion`, DPO `prompt`/`chosen`/`rejected`. `id` and
`meta` are left out. The OpenAI shapes are accepted too (`openai-sft` is the conversational
`sft` row; `openai-dpo` is renamed to prompt/chosen/rejected), and so is `rm` for DPO (its
`margin` is ignored). A row is dropped, and counted under its reason, when:

- `malformed`: it is not the method's shape (a missing column, a wrong type);
- `empty`: the prompt or an answer is blank, or a conversation has no assistant turn;
- `too_long`: prompt + answer (either answer, for DPO) is over `max_length` tokens.

Long rows are dropped, not truncated: see TrainSettings. The tokenizer is passed in (no torch
here), and token counts use the same chat template as the trainer.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.training.config import Method, TrainingError

Row = dict[str, Any]
DROP_REASONS = ("malformed", "empty", "too_long")


class Dropped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Prepared:
    """The rows a trainer gets, how many tokens they hold, and what was left out and why."""

    rows: list[Row]
    tokens: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def dropped_report(self) -> dict[str, int]:
        """Every reason with its count, zeros included, so reports have a fixed shape."""
        return {reason: self.dropped[reason] for reason in DROP_REASONS}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_jsonl(path: Path) -> list[Row]:
    """Every line as an object; a line that is not a JSON object becomes a malformed marker."""
    rows: list[Row] = []
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = None
            rows.append(value if isinstance(value, dict) else {})
    return rows


def prepare(path: Path, *, method: Method, tokenizer: Any, max_length: int) -> Prepared:
    """Normalize, check and measure every row of one export file."""
    prepared = Prepared(rows=[])
    for raw in read_jsonl(path):
        try:
            row = SHAPES[method](raw)
            length = measure(row, tokenizer)
            if length > max_length:
                raise Dropped("too_long")
        except Dropped as drop:
            prepared.dropped[drop.reason] += 1
            continue
        prepared.rows.append(row)
        prepared.tokens += length
    _check_one_style(prepared.rows, path)
    return prepared


def _check_one_style(rows: list[Row], path: Path) -> None:
    # datasets builds one schema per file: a string prompt beside a list prompt cannot load.
    if len({_style(row) for row in rows}) > 1:
        raise TrainingError(f"{path} mixes conversational and standard rows")


def _style(row: Row) -> str:
    return "standard" if isinstance(row.get("prompt", row.get("completion")), str) else "chat"


def sft_row(raw: Row) -> Row:
    if "messages" in raw:
        messages = _messages(raw["messages"])
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            raise Dropped("empty")
        if any(not m["content"].strip() for m in messages):
            raise Dropped("empty")
        return {"messages": messages}
    prompt, completion = _text(raw.get("prompt")), _text(raw.get("completion"))
    return {"prompt": prompt, "completion": completion}


def dpo_row(raw: Row) -> Row:
    if "input" in raw:  # openai-dpo
        source = raw["input"] if isinstance(raw["input"], dict) else {}
        raw = {
            "prompt": source.get("messages"),
            "chosen": raw.get("preferred_output"),
            "rejected": raw.get("non_preferred_output"),
        }
    if isinstance(raw.get("prompt"), str):
        return {key: _text(raw.get(key)) for key in ("prompt", "chosen", "rejected")}
    row = {key: _messages(raw.get(key)) for key in ("prompt", "chosen", "rejected")}
    if any(not m["content"].strip() for turns in row.values() for m in turns):
        raise Dropped("empty")
    if not (row["chosen"] and row["rejected"] and row["prompt"]):
        raise Dropped("empty")
    return row


SHAPES = {"sft": sft_row, "dpo": dpo_row}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Dropped("malformed")
    if not value.strip():
        raise Dropped("empty")
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise Dropped("malformed")
    turns = []
    for message in value:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise Dropped("malformed")
        turns.append({"role": message["role"], "content": message["content"]})
    return turns


def measure(row: Row, tokenizer: Any) -> int:
    """Tokens of the longest sequence the trainer builds from the row (with EOS, as TRL adds)."""
    if "messages" in row:
        return _chat_tokens(tokenizer, row["messages"])
    if "completion" in row:
        return _pair_tokens(tokenizer, row["prompt"], row["completion"])
    return max(_pair_tokens(tokenizer, row["prompt"], row[key]) for key in ("chosen", "rejected"))


def _pair_tokens(tokenizer: Any, prompt: Any, answer: Any) -> int:
    if isinstance(prompt, str):
        return len(tokenizer(prompt + answer)["input_ids"]) + 1
    return _chat_tokens(tokenizer, prompt + answer)


def _chat_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    rendered = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    return len(rendered["input_ids"])
