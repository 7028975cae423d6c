"""Step metrics out, a stop request in: the one callback both trainers get.

`report` is called from the training loop, so it is rate-limited here (the caller writes to a
database row or a terminal, and a tiny model runs hundreds of steps a second). The last step
always reports, so a caller always sees the final loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

# TRL's log keys that callers get, under the same names (DPO adds its reward statistics).
FORWARDED = ("loss", "learning_rate", "grad_norm", "rewards/accuracies", "rewards/margins")


class Progress(TrainerCallback):
    def __init__(
        self,
        report: Callable[[dict[str, Any]], None],
        should_stop: Callable[[], bool],
        every_s: float,
    ) -> None:
        self.report = report
        self.should_stop = should_stop
        self.every_s = every_s
        self.cancelled = False
        self.started = time.monotonic()
        self.last_report = -float("inf")
        self.history: list[dict[str, Any]] = []

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.started = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Polled every optimizer step; the Trainer finishes the step and leaves the loop.
        if self.should_stop():
            self.cancelled = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "loss" not in logs:
            return  # evaluation logs and the end-of-training summary are not steps
        point = self.point(state, logs)
        self.history.append(point)
        now = time.monotonic()
        if now - self.last_report >= self.every_s or state.global_step >= state.max_steps:
            self.last_report = now
            self.report(point)

    def point(self, state: TrainerState, logs: dict[str, Any]) -> dict[str, Any]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        point: dict[str, Any] = {"step": state.global_step, "total_steps": state.max_steps}
        point |= {key: float(logs[key]) for key in FORWARDED if key in logs}
        tokens = float(logs.get("num_tokens", 0.0))
        point["tokens"] = int(tokens)
        point["tokens_per_s"] = round(tokens / seconds, 1)
        point["seconds"] = round(seconds, 3)
        return point
