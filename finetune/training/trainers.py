"""TRL trainer construction for one job: the model, LoRA, and the SFT or DPO config.

Decisions (docs/finetune.md has the reasons at length):
- LoRA via `peft_config`: TRL wraps the model itself, and for DPO with no `ref_model` the
  reference is the same weights with the adapter disabled, so there is no second copy.
- bf16 on a GPU that has it, fp32 otherwise (CPU, or an older GPU: fp16 needs loss scaling
  and is not worth a second code path for LoRA).
- SFT on `messages` masks the loss to assistant turns (`assistant_only_loss`, which needs the
  model's chat template to mark them with `{% generation %}`); SFT on prompt/completion masks
  it to the completion (TRL's default for that shape).
- DPO's reference log-probabilities are computed once, before training, with the adapter
  disabled (`precompute_reference`), instead of a second no-grad forward every step: the
  reference never changes, so the loss is the same and each step does one forward, not two.
- DPO pairs go through the decoder as one row each (pairs.py, switched on by the runner), so
  a prompt is computed once for its two answers.
- Rows are batched with others of similar length (`group_by_length`), unless SFT packs them:
  a batch is padded to its longest row, and on real exports (answers of a few words beside
  answers of a page) random batches were mostly padding.
- Evaluation is not interleaved with training: it runs once at the end (evaluation.py).
- Nothing is checkpointed by the Trainer (`save_strategy="no"`): the adapter is written once,
  atomically, by output.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from finetune.training import pairs
from finetune.training.config import TrainJob


def precision() -> tuple[str, torch.dtype]:
    """The device the Trainer will use and the dtype to load the base weights in."""
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return "cuda", torch.bfloat16 if bf16 else torch.float32
    return "cpu", torch.float32


def load_model(path: Path, dtype: torch.dtype) -> Any:
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def lora_config(job: TrainJob) -> LoraConfig:
    lora = job.lora
    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def common_args(job: TrainJob, scratch: Path, device: str, dtype: torch.dtype) -> dict[str, Any]:
    """TrainingArguments shared by both methods; TRL's own defaults are overridden on purpose."""
    s = job.settings
    return {
        "output_dir": str(scratch),
        "num_train_epochs": s.epochs,
        "max_steps": s.max_steps if s.max_steps is not None else -1,
        "learning_rate": s.learning_rate,
        "per_device_train_batch_size": s.batch_size,
        "per_device_eval_batch_size": s.eval_batch_size,
        "gradient_accumulation_steps": s.gradient_accumulation,
        "warmup_steps": s.warmup_ratio,  # a float below 1 is a fraction of the steps
        "weight_decay": s.weight_decay,
        "seed": s.seed,
        "data_seed": s.seed,
        # TRL turns checkpointing on by default; here it is the caller's memory decision.
        "gradient_checkpointing": s.gradient_checkpointing,
        "bf16": dtype == torch.bfloat16,
        "use_cpu": device == "cpu",
        "max_length": s.max_length,
        "logging_steps": 1,  # every step reaches the Progress callback, which rate-limits
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def build(
    job: TrainJob,
    *,
    tokenizer: Any,
    train_rows: list[dict[str, Any]],
    test_rows: list[dict[str, Any]] | None,
    callbacks: list[TrainerCallback],
    scratch: Path,
) -> Any:
    """The SFTTrainer or DPOTrainer for the job, datasets tokenized, LoRA attached."""
    device, dtype = precision()
    args = common_args(job, scratch, device, dtype)
    kwargs: dict[str, Any] = {
        "model": load_model(job.base_model, dtype),
        "processing_class": tokenizer,
        "train_dataset": Dataset.from_list(train_rows),
        "eval_dataset": Dataset.from_list(test_rows) if test_rows else None,
        "peft_config": lora_config(job),
        "callbacks": callbacks,
    }
    if job.method == "sft":
        trainer = _sft(args, job, train_rows, kwargs)
    else:
        trainer = _dpo(args, job, kwargs)
    if not job.settings.packing:
        group_by_length(trainer)
    if job.settings.gradient_checkpointing and job.settings.checkpoint_layers is not None:
        trainer.add_callback(RecomputeFirst(job.settings.checkpoint_layers))
    # With tqdm off the Trainer prints every log dict; progress goes through `report` instead.
    trainer.remove_callback(PrinterCallback)
    return trainer


def _sft(args: dict[str, Any], job: TrainJob, rows: list[dict[str, Any]], kwargs: Any) -> Any:
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(
        **args,
        assistant_only_loss="messages" in rows[0],
        packing=job.settings.packing,
        eval_packing=False,  # eval loss per row, comparable between runs with and without packing
    )
    return SFTTrainer(args=config, **kwargs)


def _dpo(args: dict[str, Any], job: TrainJob, kwargs: Any) -> Any:
    from trl import DPOConfig, DPOTrainer

    # No ref_model: with a PEFT model TRL disables the adapter for the reference pass.
    # TRL's own precompute (precompute_ref_log_probs=True) hashes every weight of the model for
    # a cache file name and writes an Arrow cache; precompute_reference does it in memory.
    config = DPOConfig(**args, beta=job.settings.beta, precompute_ref_log_probs=False)
    return DPOTrainer(args=config, **kwargs)


class RecomputeFirst(TrainerCallback):
    """Gradient checkpointing on the first `count` decoder layers only (`checkpoint_layers`).

    The Trainer turns checkpointing on for every layer when training starts; this runs right
    after and turns it off again past the first `count`: those layers keep their activations
    for the backward pass instead of running their forward a second time.
    """

    def __init__(self, count: int) -> None:
        self.count = count

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.modeling_layers import GradientCheckpointingLayer

        layers = [m for m in kwargs["model"].modules() if isinstance(m, GradientCheckpointingLayer)]
        for layer in layers[self.count :]:
            layer.gradient_checkpointing = False


def group_by_length(trainer: Any) -> None:
    """Draw each batch from rows of about the same length, so little of it is padding.

    transformers' LengthGroupedSampler: a random permutation cut into mega-batches of up to
    50 batches, each sorted by length, so the order stays random between mega-batches and
    the seed still decides it. A row's length is what the collator pads: prompt + answer for
    SFT; for DPO the packed row (`pairs.pair_lengths`: prompt + both answers).
    The Trainer would read lengths from a dataset column, but drops columns the model does
    not take before it builds the sampler, so the sampler is handed over directly.
    """
    data = trainer.train_dataset
    if "prompt_ids" in data.column_names:
        lengths = pairs.pair_lengths(data)
    else:
        lengths = [len(ids) for ids in data["input_ids"]]
    size = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps
    trainer._get_train_sampler = lambda *_: LengthGroupedSampler(size, lengths=lengths)


def precompute_reference(trainer: Any, batch_size: int) -> float:
    """Reference log-probs of every train and eval pair, once, before training; seconds taken.

    Adds TRL's `ref_chosen_logps` / `ref_rejected_logps` columns and switches the trainer to
    read them (TRL's `precompute_ref_logps` path), so no step runs the reference forward. The
    values are what the per-step pass computes (the same weights with the adapter disabled,
    TRL's collation and output layer: `pairs.pair_logps`), but each row once, not once per
    epoch, in batches of rows of about the same length (little padding) of up to `batch_size`
    pairs, with no dropout. A no-op for SFT.
    """
    if not hasattr(trainer, "compute_ref_log_probs"):
        return 0.0
    started = time.perf_counter()
    with trainer.accelerator.unwrap_model(trainer.model).disable_adapter():
        trainer.train_dataset = _with_reference(trainer, trainer.train_dataset, batch_size)
        if trainer.eval_dataset is not None and len(trainer.eval_dataset):
            trainer.eval_dataset = _with_reference(trainer, trainer.eval_dataset, batch_size)
    trainer.precompute_ref_logps = True
    return time.perf_counter() - started


def _with_reference(trainer: Any, dataset: Dataset, batch_size: int) -> Dataset:
    chosen, rejected = pairs.pair_logps(trainer, dataset, batch_size)
    return dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)


@contextlib.contextmanager
def scored_answers_only() -> Iterator[None]:
    """Make TRL's fused LM head score only the trained positions on every device.

    TRL 1.16 (`trl.trainer.utils.add_fused_lm_head`) scores only positions with a label where
    Triton runs (CUDA), and every position elsewhere (so that Neuron compiles one shape); on
    CPU that is the prompt and the padding too, half or more of a step's time on a small
    model. The values are the same (unscored positions are zeros either way); only the work
    differs. Scoped to the call, restored after.
    """
    from trl.trainer import utils

    original = utils._use_triton
    utils._use_triton = lambda device: True  # decides only which rows are scored
    try:
        yield
    finally:
        utils._use_triton = original
