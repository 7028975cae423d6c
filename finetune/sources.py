"""The export a run trains on: which ones qualify, and where its files are.

The Export record says where the files went (`path`: a .jsonl file, or a directory of split
files) and what they held (`files`: name -> sha256, rows, bytes); we read the record rather
than assume a layout. Before training, the worker checks the files' SHA-256 against the record,
so a run trains on exactly the rows the export describes, or fails saying the files changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from exports.models import Export
from finetune.errors import InvalidRun

# The formats that TRL's trainers load as they are, per method.
FORMAT_FOR_METHOD = {"sft": "sft", "dpo": "dpo"}
TRAIN_FILE, TEST_FILE = "train.jsonl", "test.jsonl"


@dataclass(frozen=True)
class ExportFiles:
    train: Path
    test: Path | None

    def paths(self) -> list[Path]:
        return [self.train] if self.test is None else [self.train, self.test]


def check_export(export: Export, method: str) -> ExportFiles:
    """The export's files, if a `method` run may train on it; InvalidRun says why not."""
    if method not in FORMAT_FOR_METHOD:
        raise InvalidRun({"method": f"must be one of {', '.join(FORMAT_FOR_METHOD)}"})
    if export.status != Export.Status.SUCCEEDED:
        raise InvalidRun({"export": f"export {export.pk} has not succeeded ({export.status})"})
    wanted = FORMAT_FOR_METHOD[method]
    if export.format != wanted:
        reason = f"a {method} run needs a {wanted} export; export {export.pk} is {export.format}"
        raise InvalidRun({"export": reason})
    files = export_files(export)
    missing = [str(path) for path in files.paths() if not path.is_file()]
    if missing:
        raise InvalidRun({"export": f"the export's file {missing[0]} is missing"})
    return files


def export_files(export: Export) -> ExportFiles:
    """Locate the train (and test) file from the record's path and file names."""
    if export.path == "-" or not export.files:
        raise InvalidRun({"export": f"export {export.pk} went to standard output: no files"})
    path = Path(export.path)
    if path.name in export.files:  # a single-file export: the path is the train file
        return ExportFiles(path, None)
    if TRAIN_FILE not in export.files:
        raise InvalidRun({"export": f"export {export.pk} has no {TRAIN_FILE}"})
    test = path / TEST_FILE if TEST_FILE in export.files else None
    return ExportFiles(path / TRAIN_FILE, test)


def verify(export: Export, files: ExportFiles) -> None:
    """Check each file's SHA-256 against the record; InvalidRun when one has changed."""
    for path in files.paths():
        expected = export.files[path.name]["sha256"]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise InvalidRun({"export": f"{path} changed after the export was written"})
