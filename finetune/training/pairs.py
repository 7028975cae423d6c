"""DPO pairs through the model: each pair's chosen and rejected answers in one row.

TRL's DPO batch is `[chosen rows; rejected rows]`, each row prompt + answer, right padded, so
every prompt goes through the model twice. While `shared_prefixes` is active, the backbone
(the decoder stack, below the output layer) gets each pair as one row instead: the two
sequences' common prefix once (the prompt, plus any first answer tokens the two share), then
the rest of the chosen answer, then the rest of the rejected one. Positions continue from the
prefix on both branches, and the attention mask keeps the branches apart: a rejected token
sees the prefix and the rejected tokens before it, never a chosen token. The hidden states
are then laid back out in TRL's shape, so the output layer, the loss, the metrics and the
gradients are TRL's, unchanged.

It is exact: under a causal mask a token's hidden state depends only on the tokens before it,
so the prefix's states are the same in both sequences; computing them once gives the same
values and, through the gather, the same gradients (the two uses add up). One difference in
kind: with LoRA dropout on, the prefix draws one dropout mask for both answers, not two.

What it saves: a batch of B pairs sends B x (prompt + chosen + rejected) tokens through the
decoder instead of 2B x (prompt + longer answer), so the longer the prompt against the
answers, the more: on multi-turn preference data (HH-RLHF) the prompt is most of each row.
Less activation memory, too. Attention takes a custom mask, which needs the SDPA (or eager)
attention; with another implementation (flash-attention) the batch goes through as TRL
lays it out. So does a batch longer than the model's sliding attention window (Mistral,
Gemma, Qwen2 with `use_sliding_window`): a custom mask replaces the window, which is exact
only while no row reaches past it. And so does a batch whose forward returns MoE router
logits: TRL's load-balancing loss reads them against its own layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

# Attention implementations that take an arbitrary 4D mask (bool for SDPA, additive for eager).
MASKABLE = ("sdpa", "eager")


@dataclass(frozen=True)
class Packed:
    """One row per pair, and where each of TRL's row positions finds its hidden state."""

    input_ids: torch.Tensor  # (pairs, width)
    position_ids: torch.Tensor  # (pairs, width)
    attention_mask: torch.Tensor  # (pairs, 1, width, width): True where a query sees a key
    source: torch.Tensor  # (2 * pairs * length,): flat packed position of each TRL position
    rows: int  # TRL's rows: 2 * pairs
    length: int  # TRL's padded length

    def unpack(self, hidden: torch.Tensor) -> torch.Tensor:
        """(pairs, width, H) hidden states back to TRL's (2 * pairs, length, H)."""
        flat = hidden.reshape(-1, hidden.size(-1))
        return flat.index_select(0, self.source).view(self.rows, self.length, -1)


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Packed:
    """TRL's right-padded `[chosen; rejected]` batch as one row per pair (see the module doc).

    A pair's common prefix stops at its shorter sequence, so a rejected answer that is a
    prefix of the chosen one has no tokens of its own: its states are all chosen states.
    Padding queries see only themselves, so no softmax row is empty (SDPA would give NaN).
    """
    pairs, length = input_ids.size(0) // 2, input_ids.size(1)
    device = input_ids.device
    chosen_len = attention_mask[:pairs].sum(1, keepdim=True)  # (pairs, 1)
    rejected_len = attention_mask[pairs:].sum(1, keepdim=True)
    col = torch.arange(length, device=device)[None, :]
    same = input_ids[:pairs] == input_ids[pairs:]
    same &= col < torch.minimum(chosen_len, rejected_len)
    shared = same.long().cumprod(1).sum(1, keepdim=True)  # common prefix length
    total = chosen_len + rejected_len - shared
    width = int(total.max())

    # Packed position q holds chosen token q below chosen_len, rejected token
    # shared + q - chosen_len from there on, and padding from total on.
    q = torch.arange(width, device=device)[None, :]
    real = q < total
    in_rejected = (q >= chosen_len) & real
    token_col = torch.where(in_rejected, shared + q - chosen_len, q).masked_fill(~real, 0)
    pair_row = torch.arange(pairs, device=device)[:, None]
    ids = input_ids[torch.where(in_rejected, pair_row + pairs, pair_row), token_col]

    query, key = q[:, :, None], q[:, None, :]  # (1, width, 1), (1, 1, width)
    lc, k, n = (t[:, :, None] for t in (chosen_len, shared, total))  # (pairs, 1, 1)
    sees = (key <= query) & ~((query >= lc) & (key >= k) & (key < lc))
    sees = torch.where(query < n, sees, key == query)

    rejected_at = torch.where(col < shared, col, chosen_len + col - shared)
    source = torch.cat(
        [
            pair_row * width + col.masked_fill(col >= chosen_len, 0),
            pair_row * width + rejected_at.masked_fill(col >= rejected_len, 0),
        ]
    )
    return Packed(ids, token_col, sees[:, None], source.reshape(-1), 2 * pairs, length)


@contextlib.contextmanager
def shared_prefixes(trainer: Any) -> Iterator[bool]:
    """Run every DPO batch through the backbone as packed pairs while the block runs.

    Yields whether it is on: only for a DPO trainer whose model's attention takes a custom
    mask. Every backbone call inside the block must be a `[chosen; rejected]` batch, which is
    what DPOTrainer's steps, its evaluation, its reference pass and `pair_logps` make.
    """
    backbone = _backbone(trainer)
    config = getattr(backbone, "config", None)
    attention = getattr(config, "_attn_implementation", None)
    if not hasattr(trainer, "compute_ref_log_probs") or attention not in MASKABLE:
        yield False
        return
    additive = attention == "eager"
    window = sliding_window(config)
    pending: dict[int, Packed] = {}

    def before(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        pending.clear()  # calls do not nest: an entry left here is from a forward that raised
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if args or ids is None or mask is None or mask.dim() != 2 or len(ids) % 2:
            return None
        if (window is not None and ids.size(1) > window) or kwargs.get("output_router_logits"):
            return None
        packed = pack(ids, mask)
        mask4d = packed.attention_mask
        if additive:
            dtype = module.get_input_embeddings().weight.dtype
            mask4d = torch.zeros(mask4d.shape, dtype=dtype, device=ids.device).masked_fill(
                ~mask4d, torch.finfo(dtype).min
            )
        pending[id(mask4d)] = packed
        new = {"input_ids": packed.input_ids, "attention_mask": mask4d}
        return args, {**kwargs, **new, "position_ids": packed.position_ids}

    def after(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        packed = pending.pop(id(kwargs.get("attention_mask")), None)
        if packed is None:
            return None
        output.last_hidden_state = packed.unpack(output.last_hidden_state)
        return output

    handles = [
        backbone.register_forward_pre_hook(before, with_kwargs=True),
        backbone.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield True
    finally:
        for handle in handles:
            handle.remove()


def sliding_window(config: Any) -> int | None:
    """The attention window of a model whose layers use one (0 if unknown), else None."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is not None:
        return (window or 0) if "sliding_attention" in types else None
    if window and getattr(config, "use_sliding_window", True):
        return int(window)
    return None


def _backbone(trainer: Any) -> Any:
    """The decoder stack TRL's fused output layer calls (`base_model` of the causal LM)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "get_base_model"):  # PEFT wrapper
        model = model.get_base_model()
    return model.base_model


@torch.no_grad()
def pair_logps(trainer: Any, rows: Any, batch_size: int) -> tuple[list[float], list[float]]:
    """Summed log-probability of each row's chosen and of its rejected answer, given the prompt.

    `rows` are DPOTrainer's tokenized rows. The model runs in eval mode (no dropout) with its
    adapter on or off as the caller set it. Batches are TRL's own collation of rows of about
    the same length, and the scores are TRL's fused output layer's, so they equal what a
    training step computes for the same rows.
    """
    lengths = pair_lengths(rows)
    order = sorted(range(len(rows)), key=lengths.__getitem__)
    chosen, rejected = [0.0] * len(rows), [0.0] * len(rows)
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            logps = _batch_logps(trainer, [rows[i] for i in picked])
            for n, row in enumerate(picked):
                chosen[row], rejected[row] = logps[n], logps[n + len(picked)]
    finally:
        model.train(was_training)
    return chosen, rejected


def _batch_logps(trainer: Any, rows: list[dict[str, Any]]) -> list[float]:
    """Chosen answers' summed log-probs, then rejected answers', for one batch of rows."""
    batch = trainer.data_collator(rows)
    ids = batch["input_ids"].to(trainer.accelerator.device)
    labels = ids.masked_fill(batch["completion_mask"].to(ids.device) == 0, -100)
    mask = batch["attention_mask"].to(ids.device)
    with trainer.accelerator.autocast():
        out = trainer.model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    return out.log_probs.float().sum(dim=1).tolist()


def pair_lengths(rows: Any) -> list[int]:
    """Each row's packed length: prompt + chosen + rejected tokens (at most; shared answer
    tokens count twice)."""
    columns = (rows["prompt_ids"], rows["chosen_ids"], rows["rejected_ids"])
    return [len(p) + len(c) + len(r) for p, c, r in zip(*columns, strict=True)]
