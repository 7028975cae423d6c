"""Content hashes: two items are the same item when their hashes are equal.

The hash is the SHA-256 of the canonical JSON of the normalized conversation (Unicode NFC,
whitespace runs collapsed, stripped; roles kept) and the normalized response texts, sorted, so
the same pair in swapped order is the same item. Ids, model names, metadata and an SFT draft
are not part of the content.
"""

from __future__ import annotations

import hashlib
import unicodedata
from json.encoder import encode_basestring


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped. Case is kept: it can matter."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(messages: list[dict[str, str]], responses: list[str]) -> str:
    """SHA-256 hex of the normalized conversation and the normalized responses, sorted."""
    return digest_normalized(messages, [normalize_text(text) for text in responses])


def digest_normalized(messages: list[dict[str, str]], normalized_responses: list[str]) -> str:
    # The canonical JSON is json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    # of {"messages": [[role, text], ...], "responses": [text, ...]}, spelled out here
    # because json.dumps costs a quarter of reading a record (docs/benchmarks.md).
    turns = ",".join(
        f'["{m["role"]}",{json_string(normalize_text(m["content"]))}]' for m in messages
    )
    answers = ",".join(map(json_string, sorted(normalized_responses)))
    data = f'{{"messages":[{turns}],"responses":[{answers}]}}'
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def json_string(text: str) -> str:
    """Equal to json.dumps(text, ensure_ascii=False), and several times faster for text
    without control characters, where only backslashes and quotes need escaping."""
    if text.isprintable():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return encode_basestring(text)
