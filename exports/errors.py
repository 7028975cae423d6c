"""Problems a user can act on. The command turns them into CommandErrors, the API into 400s."""

from __future__ import annotations


class ExportError(Exception):
    """An export that cannot run as asked; the message says why."""


class InvalidOptions(ExportError, ValueError):
    """The options do not fit the project or each other.

    `fields` maps each option named in a problem (ExportOptions' names: `min_votes`, `splits`)
    to its problems, for forms and the API to show beside the field.
    """

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        self.fields = fields or {}
        super().__init__(message)


class OutputError(ExportError):
    """The output cannot be written as asked (exists without --force, wrong kind of path)."""


class NoRows(ExportError):
    """Nothing matched the policy. `dropped` says which rules left out how much."""

    def __init__(self, dropped: dict[str, dict[str, int]]) -> None:
        self.dropped = dropped
        super().__init__(_message(dropped))


def _message(dropped: dict[str, dict[str, int]]) -> str:
    parts = [
        f"{unit} left out by {', '.join(f'{rule} ({n})' for rule, n in rules.items() if n)}"
        for unit, rules in dropped.items()
        if any(rules.values())
    ]
    if not parts:
        return "no rows to export: the project has no submitted annotations"
    return "no rows to export: " + "; ".join(parts)
