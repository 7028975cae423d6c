"""Parquet import: each row is a record with the JSON Lines field names (docs/import-format.md).

Rows are read a batch at a time, so memory stays flat however large the file. `messages` and
`responses` may be lists of structs or strings; `metadata` a struct or a JSON string. In error
reports a record's "line" is its 1-based row number. pyarrow is imported here only, on use.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labeling.importing.records import Build, InvalidRecord, ParsedLine, UnreadableFile

MAGIC = b"PAR1"
BATCH_ROWS = 2048


def is_parquet(head: bytes) -> bool:
    return head[:4] == MAGIC


def read_parquet(path: Path, build: Build) -> Iterator[ParsedLine]:
    number = 0
    for rows in _batches(path):
        for row in rows:
            number += 1
            try:
                yield ParsedLine(number, build(_record(row)), None)
            except InvalidRecord as problem:
                yield ParsedLine(number, None, str(problem))


def count_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    with _unreadable_as(0):
        return int(pq.ParquetFile(path).metadata.num_rows)


def _batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    with _unreadable_as(1):
        source = pq.ParquetFile(path)
    done = 0
    batches = source.iter_batches(batch_size=BATCH_ROWS)
    while True:
        with _unreadable_as(done + 1):
            batch = next(batches, None)
        if batch is None:
            return
        done += batch.num_rows
        yield batch.to_pylist()


@contextmanager
def _unreadable_as(row: int) -> Iterator[None]:
    """pyarrow's errors as UnreadableFile at `row`: the rest of the file cannot be trusted."""
    import pyarrow

    try:
        yield
    except (pyarrow.ArrowException, OSError) as error:
        raise UnreadableFile(max(row, 1), f"not a readable Parquet file ({error})") from error


def _record(row: dict[str, Any]) -> dict[str, Any]:
    metadata = row.get("metadata")
    if isinstance(metadata, str):
        try:
            row["metadata"] = json.loads(metadata)
        except json.JSONDecodeError as error:
            raise InvalidRecord("metadata", f"is not valid JSON ({error.msg})") from None
    return {key: _plain(value, key) for key, value in row.items()}


def _plain(value: Any, field: str) -> Any:
    """Parquet values as JSON values: dates as ISO text, decimals as numbers, no NaN."""
    if isinstance(value, dict):
        return {key: _plain(item, f"{field}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{field}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord(field, f"is {value}, which is not a JSON value")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        raise InvalidRecord(field, "is binary data; store text as a string column")
    return value
