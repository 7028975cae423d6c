"""What a training job is: plain dataclasses, no torch, so the web process can build them.

finetune-app builds a `TrainJob` from a FinetuneRun row and hands it to `train()` on the gpu
worker; everything the trainer needs is here, nothing is read from the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Method = Literal["sft", "dpo"]


@dataclass(frozen=True)
class LoraSettings:
    """The adapter: rank r, scale alpha / r, dropout, and which linear layers get one."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation and data settings. `max_steps` (when set) wins over `epochs`.

    `batch_size` is per device; the effective batch is batch_size * gradient_accumulation.
    `max_length` caps prompt + answer in tokens: longer rows are dropped, never truncated,
    because a truncated answer teaches the model to stop mid-sentence (SFT) and a truncated
    pair can lose the only tokens where chosen and rejected differ (DPO).
    `beta` is DPO's KL strength. `eval_batch_size` bounds memory at the final evaluation.
    `gradient_checkpointing` recomputes each decoder layer's activations in the backward pass
    instead of keeping them; `checkpoint_layers` limits that to the first N layers (None: all),
    for a run that fits with some layers kept: each layer not recomputed saves a forward of it.
    `report_every_s` is the least time between two `report` calls (the last step always reports).
    """

    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 2e-4
    batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 512
    beta: float = 0.1
    seed: int = 0
    gradient_checkpointing: bool = False
    checkpoint_layers: int | None = None
    packing: bool = False
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    eval_batch_size: int = 8
    report_every_s: float = 0.5


@dataclass(frozen=True)
class TrainJob:
    """One run: an export file (and its test split) in, an adapter directory out."""

    method: Method
    base_model: Path
    train_file: Path
    test_file: Path | None
    output_dir: Path
    lora: LoraSettings = field(default_factory=LoraSettings)
    settings: TrainSettings = field(default_factory=TrainSettings)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for training_report.json (paths as strings)."""
        return {
            "method": self.method,
            "base_model": str(self.base_model),
            "train_file": str(self.train_file),
            "test_file": None if self.test_file is None else str(self.test_file),
            "output_dir": str(self.output_dir),
            "lora": asdict(self.lora),
            "settings": asdict(self.settings),
        }


@dataclass
class TrainResult:
    """Where the adapter is and what the run measured (the same dict as the report's metrics)."""

    adapter_dir: Path
    metrics: dict[str, Any]


class Cancelled(Exception):
    """`should_stop()` said so; nothing was written to output_dir/adapter."""


class TrainingError(Exception):
    """The job cannot run as given (no usable rows, wrong export shape, missing model)."""
