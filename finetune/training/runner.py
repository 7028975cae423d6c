"""One training job from export files to an adapter folder. Imported only by `train()`."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoTokenizer

from finetune.training import data, evaluation, output, pairs, trainers
from finetune.training.config import Cancelled, TrainingError, TrainJob, TrainResult
from finetune.training.progress import Progress


def run(
    job: TrainJob,
    report: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> TrainResult:
    started = time.monotonic()
    _check_paths(job)
    transformers.set_seed(job.settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    train_set, test_set = _prepare(job, tokenizer)
    progress = Progress(report, should_stop, job.settings.report_every_s)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    # The Trainer wants an output folder; nothing it writes there is kept.
    scratch = Path(tempfile.mkdtemp(prefix=".trainer-", dir=job.output_dir))
    try:
        trainer = trainers.build(
            job,
            tokenizer=tokenizer,
            train_rows=train_set.rows,
            test_rows=test_set.rows if test_set else None,
            callbacks=[progress],
            scratch=scratch,
        )
        if should_stop():
            raise Cancelled("stopped before the first step")
        cpu = time.process_time()
        with trainers.scored_answers_only(), pairs.shared_prefixes(trainer):
            reference_s = trainers.precompute_reference(trainer, job.settings.eval_batch_size)
            summary = trainer.train()
            cpu = time.process_time() - cpu
            if progress.cancelled:
                raise Cancelled(f"stopped after step {trainer.state.global_step}")
            evaluated = evaluation.evaluate(trainer, job.method)
        adapter = output.save_adapter(trainer.model, job.output_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    metrics = _metrics(job, trainer, summary, progress, evaluated, train_set, test_set)
    # Training time includes the DPO reference pass, which replaces a forward in every step.
    metrics["reference_seconds"] = round(reference_s, 3)
    metrics["train_cpu_seconds"] = round(cpu, 3)
    metrics["seconds"] = round(time.monotonic() - started, 3)
    output.write_report(job.output_dir, _report(job, metrics))
    return TrainResult(adapter_dir=adapter, metrics=metrics)


def _check_paths(job: TrainJob) -> None:
    if not (job.base_model / "config.json").is_file():
        raise TrainingError(f"{job.base_model} is not a Hugging Face model folder (no config.json)")
    for path in (job.train_file, job.test_file):
        if path is not None and not path.is_file():
            raise TrainingError(f"{path} does not exist")


def _prepare(job: TrainJob, tokenizer: Any) -> tuple[data.Prepared, data.Prepared | None]:
    limit = job.settings.max_length
    train_set = data.prepare(
        job.train_file, method=job.method, tokenizer=tokenizer, max_length=limit
    )
    if not train_set.rows:
        dropped = ", ".join(f"{k} ({v})" for k, v in train_set.dropped_report().items() if v)
        raise TrainingError(f"no usable training rows in {job.train_file}: {dropped or 'empty'}")
    if job.test_file is None:
        return train_set, None
    test_set = data.prepare(job.test_file, method=job.method, tokenizer=tokenizer, max_length=limit)
    return train_set, test_set


def _metrics(
    job: TrainJob,
    trainer: Any,
    summary: Any,
    progress: Progress,
    evaluated: dict[str, Any],
    train_set: data.Prepared,
    test_set: data.Prepared | None,
) -> dict[str, Any]:
    last = progress.history[-1] if progress.history else {}
    model = trainer.accelerator.unwrap_model(trainer.model)
    trainable, total = model.get_nb_trainable_parameters()
    return {
        "method": job.method,
        "rows": {"train": len(train_set.rows), "test": len(test_set.rows) if test_set else 0},
        "dropped": {
            "train": train_set.dropped_report(),
            "test": test_set.dropped_report() if test_set else None,
        },
        "data_tokens": train_set.tokens,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": summary.training_loss,
        "final_step": last,
        "train_tokens": last.get("tokens", 0),
        "tokens_per_s": last.get("tokens_per_s", 0.0),
        "train_seconds": summary.metrics.get("train_runtime"),
        "eval": evaluated,
        "parameters": {"trainable": trainable, "total": total},
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "peak_memory_bytes": output.peak_memory_bytes(),
        **output.environment(),
    }


def _report(job: TrainJob, metrics: dict[str, Any]) -> dict[str, Any]:
    files = {"train": job.train_file, "test": job.test_file}
    return _finite(
        {
            "job": job.describe(),
            "data_sha256": {k: data.sha256(p) for k, p in files.items() if p is not None},
            "metrics": metrics,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(entry) for key, entry in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(entry) for entry in value]
    return value
