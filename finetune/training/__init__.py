"""LoRA training on an export (SFT or DPO), for the gpu worker and `manage.py finetune`.

Importing this package is cheap and torch-free: the web process builds a `TrainJob` from it.
torch, transformers, peft and trl (the `finetune` extra) load only when `train()` runs.
See docs/finetune.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finetune.training.config import (
    Cancelled,
    LoraSettings,
    TrainingError,
    TrainJob,
    TrainResult,
    TrainSettings,
)

__all__ = [
    "Cancelled",
    "LoraSettings",
    "TrainJob",
    "TrainResult",
    "TrainSettings",
    "TrainingError",
    "train",
]


def train(
    job: TrainJob,
    report: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> TrainResult:
    """Train a LoRA adapter; write output_dir/adapter and output_dir/training_report.json.

    `report` gets step metrics (rate-limited to one call per `report_every_s`, plus the last
    step); `should_stop` is polled every step, and True raises `Cancelled` with no adapter
    written. Raises `TrainingError` when the job cannot run (no usable rows, no model).
    Not idempotent in time, but a rerun of the same job writes the same adapter (fixed seed).
    """
    from finetune.training.runner import run

    return run(job, report, should_stop)
