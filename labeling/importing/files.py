"""Reading import files: stream their records, numbered, for validation. No ORM.

JSON Lines (one object a line) or CSV, either optionally gzip-compressed, or Parquet. The reader
is chosen by the file's magic number (gzip, Parquet) and name (`.jsonl`, `.ndjson`, `.json`,
`.csv`, `.parquet`) or, for other names, by the first byte. Problems that make the rest of the
file unreadable (a bad CSV header, a JSON array, a corrupt gzip stream or Parquet footer) raise
`UnreadableFile`: no line after them can be trusted.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from labeling.importing import parquet
from labeling.importing.records import (
    Build,
    InvalidRecord,
    ParsedLine,
    UnreadableFile,
    build_record,
    labelled,
)

CSV_COLUMNS = (
    *("id", "prompt", "response", "response_a", "response_b", "model_a", "model_b", "metadata"),
)
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
# Escapes that decode to text PostgreSQL cannot store (NUL, lone surrogates). Lines without
# them skip the deeper check, which keeps the common case fast.
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def read_records(path: Path, *, kind: str) -> Iterator[ParsedLine]:
    """Stream the records of a JSONL, CSV (gzip or not) or Parquet file for a `kind` project.

    Blank lines are skipped. Raises UnreadableFile when the rest of the file cannot be read.
    """
    build = partial(build_record, kind=kind)
    if _is_parquet(path):
        yield from parquet.read_parquet(path, build)
        return
    with _open(path) as stream:
        lines = _numbered_lines(stream)
        if _is_csv(path, stream.peek(64)):
            yield from _read_csv(lines, build)
        else:
            yield from _read_jsonl(lines, build)


def count_lines(path: Path) -> int:
    """Physical lines in the file (decompressed; rows for Parquet), for progress bars."""
    if _is_parquet(path):
        return parquet.count_rows(path)
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


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as head:
        return parquet.is_parquet(head.read(4))


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
        with labelled(CSV_LABELS):
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
