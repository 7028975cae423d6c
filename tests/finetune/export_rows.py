"""Export files written by the exporter's own row functions (exports.formats), not by hand.

`manage.py export` builds each line with `formats.<format>(...)`, `formats.envelope(...)` and
`formats.encode(...)`; these helpers call the same three, so the bytes are the exporter's.
Tests that need the database path too use tests/exports/builders.py instead.
"""

from pathlib import Path

from exports import formats
from exports.rows import Completion, Message, Preference


def user(text: str) -> tuple[Message, ...]:
    return (Message(role="user", content=text),)


Prompt = str | tuple[Message, ...]  # one user turn, or a whole conversation


def turns(prompt: Prompt) -> tuple[Message, ...]:
    return user(prompt) if isinstance(prompt, str) else prompt


def sft_line(key: str, prompt: Prompt, answer: str, style: str = formats.CONVERSATIONAL) -> bytes:
    row = Completion(key=key, prompt=turns(prompt), text=answer, meta={"item": key})
    body = formats.sft(row, style)
    return formats.encode(formats.envelope(body, key=key, meta=row.meta, bare=False))


def dpo_line(
    key: str, prompt: Prompt, chosen: str, rejected: str, style: str = formats.CONVERSATIONAL
) -> bytes:
    pair = Preference(
        key=key, prompt=turns(prompt), chosen=chosen, rejected=rejected, margin=1.0, meta={}
    )
    body = formats.dpo(pair, style)
    return formats.encode(formats.envelope(body, key=key, meta=pair.meta, bare=False))


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path
