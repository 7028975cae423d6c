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

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F


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
    batch = trainer.args.per_device_eval_batch_size
    trained = preference_accuracy(trainer.model, rows, batch, trainer.processing_class)
    with _base(trainer):
        base = preference_accuracy(trainer.model, rows, batch, trainer.processing_class)
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


@torch.no_grad()
def preference_accuracy(model: Any, rows: Any, batch_size: int, tokenizer: Any) -> float:
    """Share of rows (tokenized by DPOTrainer) where logp(chosen) > logp(rejected)."""
    model.eval()
    wins = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = chunk["prompt_ids"]
        chosen = answer_logps(model, prompts, chunk["chosen_ids"], tokenizer.pad_token_id)
        rejected = answer_logps(model, prompts, chunk["rejected_ids"], tokenizer.pad_token_id)
        wins += int((chosen > rejected).sum().item())
    return wins / len(rows)


def answer_logps(
    model: Any, prompts: Sequence[list[int]], answers: Sequence[list[int]], pad_id: int
) -> torch.Tensor:
    """Summed log-probability of each answer given its prompt, one forward pass per batch."""
    device = next(model.parameters()).device
    ids, mask, answer_mask = _right_padded(prompts, answers, pad_id)
    ids, mask, answer_mask = ids.to(device), mask.to(device), answer_mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    token_logps = torch.gather(F.log_softmax(logits, dim=-1), 2, ids[:, 1:, None]).squeeze(2)
    return (token_logps * answer_mask[:, 1:]).sum(dim=1).cpu()


def _right_padded(
    prompts: Sequence[list[int]], answers: Sequence[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    answer_mask = torch.zeros((len(prompts), width), dtype=torch.float32)
    for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        length = len(prompt) + len(answer)
        ids[row, :length] = torch.tensor(prompt + answer, dtype=torch.long)
        mask[row, :length] = 1
        answer_mask[row, len(prompt) : length] = 1.0
    return ids, mask, answer_mask
