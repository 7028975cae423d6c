"""Where an export's files go, and writing them so that they appear whole or not at all.

Each file is written to a temporary file in its own directory (same file system, so the rename
is atomic), flushed and fsynced, renamed over the target, and the directory is fsynced so the
rename itself survives a power cut. A crash leaves the old file or the new one, never half of
one; a killed process can leave a `.NAME.*.tmp` file behind, never a truncated NAME. Files are
created 0600 (mkstemp): exports hold prompts and annotations, private to the service's user.

Layouts (docs/exports.md): a file `NAME.jsonl` gets `NAME.manifest.json` and `NAME.README.md`
beside it; a directory (a path ending in "/", an existing directory, or any export with
`--split`) gets `train.jsonl` and one file per split, `manifest.json` and `README.md`; "-"
streams the rows to standard output with no manifest (the Export record keeps the counts).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from exports.errors import OutputError
from exports.splits import TRAIN

STDOUT = "-"
BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class OutputPlan:
    data: dict[str, Path] = field(default_factory=dict)  # split -> file; empty for stdout
    manifest: Path | None = None
    card: Path | None = None

    @property
    def streams(self) -> bool:
        return not self.data

    def paths(self) -> list[Path]:
        extra = [p for p in (self.manifest, self.card) if p is not None]
        return [*self.data.values(), *extra]


def plan_output(output: str, split_names: tuple[str, ...], *, force: bool) -> OutputPlan:
    """Decide the files an export writes; refuse to overwrite any of them without `force`."""
    if output == STDOUT:
        if len(split_names) > 1:
            raise OutputError("standard output takes one file: give a directory for --split")
        return OutputPlan()
    path = Path(output)
    if len(split_names) > 1 and path.suffix == ".jsonl":
        raise OutputError(f"--split writes a directory of files: give a directory, not {path}")
    plan = _directory_plan(path, split_names) if _is_directory(output, split_names) else None
    plan = plan or _file_plan(path)
    existing = [str(p) for p in plan.paths() if p.exists()]
    if existing and not force:
        raise OutputError(f"{', '.join(existing)} already exists; add --force to replace it")
    return plan


def _is_directory(output: str, split_names: tuple[str, ...]) -> bool:
    return output.endswith(("/", os.sep)) or Path(output).is_dir() or len(split_names) > 1


def _directory_plan(path: Path, split_names: tuple[str, ...]) -> OutputPlan:
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; a split export writes a directory")
    data = {name: path / f"{name}.jsonl" for name in split_names}
    return OutputPlan(data, path / "manifest.json", path / "README.md")


def _file_plan(path: Path) -> OutputPlan:
    stem = path.name.removesuffix(".jsonl")
    return OutputPlan(
        {TRAIN: path}, path.with_name(f"{stem}.manifest.json"), path.with_name(f"{stem}.README.md")
    )


class Sink:
    """Counts, hashes and remembers the first line of what it is given."""

    def __init__(self) -> None:
        self.rows = 0
        self.size = 0
        self.first_line: bytes | None = None
        self._hash = hashlib.sha256()

    def write(self, line: bytes) -> None:
        if self.first_line is None:
            self.first_line = line
        self.rows += 1
        self.size += len(line)
        self._hash.update(line)
        self._emit(line)

    def write_many(self, lines: list[bytes]) -> None:
        """`write` each line, with one hash update and one write for them all."""
        if not lines:
            return
        if self.first_line is None:
            self.first_line = lines[0]
        data = b"".join(lines)
        self.rows += len(lines)
        self.size += len(data)
        self._hash.update(data)
        self._emit_many(lines, data)

    def _emit(self, line: bytes) -> None:
        raise NotImplementedError

    def _emit_many(self, lines: list[bytes], data: bytes) -> None:
        """Emit `lines`, which `data` joins."""
        self._emit(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> None:
        """Make what was written visible."""

    def discard(self) -> None:
        """Forget what was written, where that is possible."""


class StreamSink(Sink):
    def __init__(self, emit: Callable[[bytes], Any]) -> None:
        super().__init__()
        self._write = emit

    def _emit(self, line: bytes) -> None:
        self._write(line)

    def _emit_many(self, lines: list[bytes], data: bytes) -> None:
        for line in lines:  # a stream's reader is given one line at a time
            self._write(line)


class AtomicFile(Sink):
    """A file that appears at `path` complete, on commit(), or not at all."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self._temporary = Path(temporary)
        self._file = os.fdopen(fd, "wb", buffering=BUFFER_BYTES)

    def _emit(self, line: bytes) -> None:
        self._file.write(line)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temporary, self.path)
        _fsync_directory(self.path.parent)

    def discard(self) -> None:
        self._file.close()
        self._temporary.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    sink = AtomicFile(path)
    try:
        sink.write(data)
        sink.commit()
    except BaseException:
        sink.discard()
        raise


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Sinks:
    """One sink per split; on an exception inside `with`, every temporary file is removed."""

    def __init__(self, plan: OutputPlan, emit: Callable[[bytes], Any] | None) -> None:
        if plan.streams:
            if emit is None:
                raise OutputError("nowhere to stream the rows to")
            self.by_split: dict[str, Sink] = {TRAIN: StreamSink(emit)}
        else:
            self.by_split = {}
            try:
                for split, path in plan.data.items():
                    self.by_split[split] = AtomicFile(path)
            except BaseException:
                self.discard()  # the temporary files opened before the one that failed
                raise
        self._names = {split: path.name for split, path in plan.data.items()}

    def __enter__(self) -> Sinks:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None:
            self.discard()

    def write(self, split: str, line: bytes) -> None:
        self.by_split[split].write(line)

    def write_many(self, split: str, lines: list[bytes]) -> None:
        self.by_split[split].write_many(lines)

    @property
    def rows(self) -> int:
        return sum(sink.rows for sink in self.by_split.values())

    def commit(self) -> None:
        for sink in self.by_split.values():
            sink.commit()

    def discard(self) -> None:
        for sink in self.by_split.values():
            sink.discard()

    @property
    def file_names(self) -> dict[str, str]:
        return dict(self._names)

    def counts(self) -> dict[str, int]:
        return {split: sink.rows for split, sink in self.by_split.items()}

    def files(self) -> dict[str, dict[str, Any]]:
        """File name -> sha256, rows and bytes; empty when streaming."""
        return {
            self._names[split]: {"sha256": sink.sha256, "rows": sink.rows, "bytes": sink.size}
            for split, sink in self.by_split.items()
            if split in self._names
        }

    def first_line(self) -> bytes | None:
        return next((s.first_line for s in self.by_split.values() if s.first_line), None)
