"""Reading import files: stream records, validate them, normalize them, hash them. No ORM.

The format is described for users in docs/import-format.md. In short: JSON Lines (one object a
line) or CSV, either of them optionally gzip-compressed; the reader is chosen by the file name
(`.jsonl`, `.ndjson`, `.json`, `.csv`, each optionally with `.gz`) or, for other names, by the
first byte. Every record becomes an `ItemRecord`; a record that does not fit becomes a
`ParsedLine` with an error naming the field, so that every bad line of a file can be listed.
Problems that make the rest of the file unreadable (a bad CSV header, a JSON array,
a corrupt gzip stream) raise `UnreadableFile` instead: no line after them can be trusted.

Two items are the same item when their content hashes are equal: the SHA-256 of the canonical
JSON of the normalized conversation (Unicode NFC, whitespace runs collapsed, stripped; roles
kept) and the normalized response texts, sorted, so the same pair in swapped order is the same
item. Ids, model names, metadata and an SFT draft are not part of the content.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypedDict

SFT = "sft"
PAIRWISE = "pairwise"
FIELDS = ("id", "prompt", "messages", "response", "responses", "metadata")
HH_FIELDS = ("chosen", "rejected")
KNOWN_FIELDS = frozenset(FIELDS + HH_FIELDS)
CSV_COLUMNS = (
    *("id", "prompt", "response", "response_a", "response_b", "model_a", "model_b", "metadata"),
)
ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
MAX_MODEL_LENGTH = 200
CSV_FIELD_LIMIT = 64 * 1024 * 1024
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
# How CSV columns are named in errors, where the record they build uses the JSON names.
CSV_LABELS = {
    "responses": "response_a/response_b",
    "responses[0].text": "response_a",
    "responses[1].text": "response_b",
    "responses[0].model": "model_a",
    "responses[1].model": "model_b",
}
HH_LABELS = {"responses": "chosen/rejected", "responses[0]": "chosen", "responses[1]": "rejected"}
# HH-RLHF transcripts: "\n\nHuman: ...\n\nAssistant: ..." (the space after the colon is
# missing where a turn is empty).
HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
# Escapes that decode to text PostgreSQL cannot store (NUL, lone surrogates). Lines without
# them skip the deeper check, which keeps the common case fast.
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


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


# Reading ------------------------------------------------------------------------------------


def read_records(path: Path, *, kind: str) -> Iterator[ParsedLine]:
    """Stream the records of a JSONL or CSV file (gzip or not) for a project of `kind`.

    Blank lines are skipped. Raises UnreadableFile when the rest of the file cannot be read.
    """
    build = partial(build_record, kind=kind)
    with _open(path) as stream:
        lines = _numbered_lines(stream)
        if _is_csv(path, stream.peek(64)):
            yield from _read_csv(lines, build)
        else:
            yield from _read_jsonl(lines, build)


def count_lines(path: Path) -> int:
    """Physical lines in the file (decompressed), for progress bars."""
    with _open(path) as stream:
        count = 0
        last = b""
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk
        return count + (1 if last and not last.endswith(b"\n") else 0)


@contextmanager
def _open(path: Path) -> Iterator[io.BufferedReader[io.FileIO] | gzip.GzipFile]:
    # Sniff the magic number rather than trust the name: uploads get renamed.
    with io.BufferedReader(io.FileIO(path, "rb"), buffer_size=1 << 20) as raw:
        if raw.peek(2)[:2] != GZIP_MAGIC:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped


def _numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
            yield number, raw.removeprefix(UTF8_BOM) if number == 1 else raw
    except (OSError, EOFError, zlib.error) as error:  # a truncated or corrupt gzip stream
        raise UnreadableFile(number + 1, f"cannot read the file ({error})") from error


def _is_csv(path: Path, head: bytes) -> bool:
    """The name decides (`.csv`, `.jsonl`...); other names are sniffed by the first byte."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".csv":
        return True
    first = head.removeprefix(UTF8_BOM).lstrip()[:1]
    if first == b"[":
        raise UnreadableFile(1, "a JSON array is not JSON Lines: write one object a line")
    return suffix not in JSON_SUFFIXES and first not in (b"{", b"")


def _read_jsonl(lines: Iterator[tuple[int, bytes]], build: Build) -> Iterator[ParsedLine]:
    for number, raw in lines:
        if raw.isspace() or not raw:
            continue
        try:
            yield ParsedLine(number, build(_decode_json(raw)), None)
        except InvalidRecord as problem:
            yield ParsedLine(number, None, str(problem))


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
    raise InvalidRecord(None, f"invalid JSON ({name} is not a JSON value)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRecord(None, f"not UTF-8 text (byte {error.start + 1})") from error
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidRecord(None, f"invalid JSON ({error.msg} at column {error.colno})") from None
    if SUSPECT_ESCAPE.search(text):
        _check_storable(value)
    return value


def _check_storable(value: Any) -> None:
    for text in _strings(value):
        if "\x00" in text:
            raise InvalidRecord(None, "contains a NUL character (\\u0000), which cannot be stored")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRecord(None, "contains an unpaired surrogate (not Unicode)") from None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# CSV ----------------------------------------------------------------------------------------


def _read_csv(lines: Iterator[tuple[int, bytes]], build: Build) -> Iterator[ParsedLine]:
    csv.field_size_limit(CSV_FIELD_LIMIT)  # long responses exceed the default 128 KiB
    reader = csv.reader(_decoded(lines), strict=True)
    start = 1  # where the record being read begins: a quoted cell may span lines
    try:
        columns = _csv_header(next(reader, []))
        start = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                yield _csv_line(start, columns, row, build)
            start = reader.line_num + 1
    except csv.Error as error:
        raise UnreadableFile(start, f"malformed CSV ({error})") from error


def _decoded(lines: Iterator[tuple[int, bytes]]) -> Iterator[str]:
    for number, raw in lines:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            # One CSV record may span lines, so a bad line cannot be skipped on its own.
            raise UnreadableFile(number, "not UTF-8 text: save the file as UTF-8") from error


def _csv_header(row: list[str]) -> list[str]:
    columns = [cell.strip().lower() for cell in row]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        allowed = ", ".join(CSV_COLUMNS)
        raise UnreadableFile(1, f'unknown column "{unknown[0]}" (the columns are {allowed})')
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UnreadableFile(1, f'column "{repeated[0]}" appears twice')
    if "prompt" not in columns:
        raise UnreadableFile(1, 'the header has no "prompt" column')
    return columns


def _csv_line(number: int, columns: list[str], row: list[str], build: Build) -> ParsedLine:
    if len(row) > len(columns):
        problem = f"has {len(row)} cells but the header has {len(columns)} columns"
        return ParsedLine(number, None, problem)
    cells = {column: cell for column, cell in zip(columns, row, strict=False) if cell}
    try:
        with _labels(CSV_LABELS):
            return ParsedLine(number, build(_csv_fields(cells)), None)
    except InvalidRecord as problem:
        return ParsedLine(number, None, str(problem))


def _csv_fields(cells: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the record that JSON Lines would hold; empty cells are absent."""
    if any("\x00" in cell for cell in cells.values()):
        raise InvalidRecord(None, "contains a NUL character, which cannot be stored")
    fields: dict[str, Any] = {k: cells[k] for k in ("id", "prompt", "response") if k in cells}
    pair = [cells.get("response_a", ""), cells.get("response_b", "")]
    models = [cells.get("model_a"), cells.get("model_b")]
    if any(pair) or any(models):
        fields["responses"] = [
            {"text": text, "model": model} for text, model in zip(pair, models, strict=True)
        ]
    if "metadata" in cells:
        try:
            fields["metadata"] = _DECODER.decode(cells["metadata"])
        except json.JSONDecodeError as error:
            raise InvalidRecord("metadata", f"is not valid JSON ({error.msg})") from None
        _check_storable(fields["metadata"])
    return fields


# Validation ---------------------------------------------------------------------------------


def build_record(raw: Any, *, kind: str) -> ItemRecord:
    """Validate one decoded record for a project of `kind` and normalize it.

    A field set to null counts as absent. Raises InvalidRecord naming the field.
    """
    if not isinstance(raw, dict):
        raise InvalidRecord(None, f"expected a JSON object, got {_json_type(raw)}")
    fields = {key: value for key, value in raw.items() if value is not None}
    _check_keys(fields)
    if "chosen" in fields or "rejected" in fields:
        with _labels(HH_LABELS):
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
    return _digest(messages, texts)


@contextmanager
def _labels(names: dict[str, str]) -> Iterator[None]:
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


# Hashing ------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped. Case is kept: it can matter."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(messages: list[dict[str, str]], responses: list[str]) -> str:
    """SHA-256 hex of the normalized conversation and the normalized responses, sorted."""
    return _digest(messages, [normalize_text(text) for text in responses])


def _digest(messages: list[dict[str, str]], normalized_responses: list[str]) -> str:
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
