"""TRL trainer construction for one job: the model, LoRA, and the SFT or DPO config.

Decisions (docs/finetune.md has the reasons at length):
- LoRA via `peft_config`: TRL wraps the model itself, and for DPO with no `ref_model` the
  reference is the same weights with the adapter disabled, so there is no second copy.
- bf16 on a GPU that has it, fp32 otherwise (CPU, or an older GPU: fp16 needs loss scaling
  and is not worth a second code path for LoRA).
- SFT on `messages` masks the loss to assistant turns (`assistant_only_loss`, which needs the
  model's chat template to mark them with `{% generation %}`); SFT on prompt/completion masks
  it to the completion (TRL's default for that shape).
- Evaluation is not interleaved with training: it runs once at the end (evaluation.py).
- Nothing is checkpointed by the Trainer (`save_strategy="no"`): the adapter is written once,
  atomically, by output.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback

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
    config = DPOConfig(**args, beta=job.settings.beta, precompute_ref_log_probs=False)
    return DPOTrainer(args=config, **kwargs)
