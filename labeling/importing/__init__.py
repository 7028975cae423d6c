"""Import files: stream records (files), validate them (records), hash them (hashing). No ORM.

The format is described for users in docs/import-format.md. Every record becomes an
`ItemRecord`; a record that does not fit becomes a `ParsedLine` with an error naming the field,
so that every bad line of a file can be listed.

Two items are the same item when their content hashes are equal: the SHA-256 of the canonical
JSON of the normalized conversation (Unicode NFC, whitespace runs collapsed, stripped; roles
kept) and the normalized response texts, sorted, so the same pair in swapped order is the same
item. Ids, model names, metadata and an SFT draft are not part of the content.
"""

from labeling.importing.files import count_lines, read_records
from labeling.importing.hashing import content_hash, json_string, normalize_text
from labeling.importing.records import (
    PAIRWISE,
    SFT,
    InvalidRecord,
    ItemRecord,
    ParsedLine,
    UnreadableFile,
    build_record,
)

__all__ = [
    "PAIRWISE",
    "SFT",
    "InvalidRecord",
    "ItemRecord",
    "ParsedLine",
    "UnreadableFile",
    "build_record",
    "content_hash",
    "count_lines",
    "json_string",
    "normalize_text",
    "read_records",
]
