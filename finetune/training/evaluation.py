"""The end-of-run evaluation on the export's test split, trained adapter against the base.

SFT: the mean token loss on the test rows (the same masking as training), with the adapter
and with it disabled. DPO: TRL's eval loss and implicit-reward statistics, plus *preference
accuracy*: the share of held-out pairs where the model gives the chosen answer a higher
log-probability (summed over the answer's tokens) than the rejected one. The base model
gets the same measure with the adapter disabled. TRL's `rewards/accuracies` cannot serve as
the base's figure: it compares the policy with the base, so for the base itself every
margin is zero.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from finetune.training import pairs


def evaluate(trainer: Any, method: str) -> dict[str, Any]:
    if trainer.eval_dataset is None or len(trainer.eval_dataset) == 0:
        return {}
    if method == "sft":
        return _sft(trainer)
    return _dpo(trainer)


def _sft(trainer: Any) -> dict[str, Any]:
    trained = trainer.evaluate()["eval_loss"]
    with _base(trainer):
        base = trainer.evaluate()["eval_loss"]
    return {"rows": len(trainer.eval_dataset), "loss": trained, "base_loss": base}


def _dpo(trainer: Any) -> dict[str, Any]:
    logs = trainer.evaluate()
    rows = trainer.eval_dataset
    trained = preference_accuracy(
        *pairs.pair_logps(trainer, rows, trainer.args.per_device_eval_batch_size)
    )
    # The base is the reference: trainers.precompute_reference scored these rows already, in
    # the same batches, with the adapter disabled.
    base = preference_accuracy(rows["ref_chosen_logps"], rows["ref_rejected_logps"])
    return {
        "rows": len(rows),
        "loss": logs["eval_loss"],
        "rewards/accuracies": logs.get("eval_rewards/accuracies"),
        "rewards/margins": logs.get("eval_rewards/margins"),
        "preference_accuracy": trained,
        "base_preference_accuracy": base,
    }


def _base(trainer: Any) -> AbstractContextManager[Any]:
    return trainer.accelerator.unwrap_model(trainer.model).disable_adapter()


def preference_accuracy(chosen: list[float], rejected: list[float]) -> float:
    """Share of rows whose chosen answer has the higher summed log-probability."""
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
