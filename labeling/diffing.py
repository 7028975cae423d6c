"""Line diffs for guideline versions and for an SFT edit against its draft. Pure functions."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffLine:
    op: str  # "equal" | "insert" | "delete"
    text: str

    @property
    def marker(self) -> str:
        return {"insert": "+", "delete": "-"}.get(self.op, " ")


def line_diff(old: str, new: str) -> list[DiffLine]:
    """Every line of both texts, marked kept, inserted or deleted, in reading order."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines += [DiffLine("equal", text) for text in old_lines[i1:i2]]
            continue
        lines += [DiffLine("delete", text) for text in old_lines[i1:i2]]
        lines += [DiffLine("insert", text) for text in new_lines[j1:j2]]
    return lines


def has_changes(lines: list[DiffLine]) -> bool:
    return any(line.op != "equal" for line in lines)
