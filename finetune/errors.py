"""The finetune app's expected failures, each saying which field is wrong and why."""

from __future__ import annotations


class InvalidRun(Exception):
    """A run cannot be launched as asked: `errors` maps each bad field to the reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in errors.items()))


class RunFinished(Exception):
    """The run has already finished: there is nothing left to cancel."""
