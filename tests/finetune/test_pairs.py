"""DPO pairs packed into one row each (finetune/training/pairs.py): the layout, and that a
step through the packed rows gives TRL's values and gradients."""

from pathlib import Path

import pytest

from finetune.training import LoraSettings, TrainJob, TrainSettings
from tests.finetune.export_rows import dpo_line, sft_line, write


def test_pack_lays_each_pair_out_as_one_row():
    import torch

    from finetune.training.pairs import pack

    # Pair 0: prompt [1, 2], chosen [3, 4], rejected [5]. Pair 1: chosen [], rejected [9, 6]
    # after the common prefix [7, 8]. TRL's layout: chosen rows, then rejected rows, padded 0.
    ids = torch.tensor([[1, 2, 3, 4], [7, 8, 0, 0], [1, 2, 5, 0], [7, 8, 9, 6]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])

    packed = pack(ids, mask)

    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 5], [7, 8, 9, 6, 7]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 0]]
    sees = packed.attention_mask[:, 0].int().tolist()
    assert sees[0] == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],  # the rejected token sees the prompt and itself, not the chosen ones
    ]
    assert sees[1] == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [0, 0, 0, 0, 1],  # padding sees only itself
    ]
    # Where each of TRL's 4 x 4 positions reads its state (row * width + column); padding:
    # the row's start.
    assert packed.source.view(4, 4).tolist() == [
        [0, 1, 2, 3],
        [5, 6, 5, 5],
        [0, 1, 4, 0],
        [5, 6, 7, 8],
    ]
    hidden = torch.arange(10.0).view(2, 5, 1)
    assert packed.unpack(hidden)[2, :3, 0].tolist() == [0.0, 1.0, 4.0]


def build(tmp_path: Path, model: Path, method: str, lines: list[bytes], dropout: float = 0.0):
    from transformers import AutoTokenizer

    from finetune.training import data, trainers

    path = write(tmp_path / f"{method}.jsonl", lines)
    job = TrainJob(
        method=method,
        base_model=model,
        train_file=path,
        test_file=None,
        output_dir=tmp_path / "run",
        lora=LoraSettings(rank=4, alpha=8, dropout=dropout),
        settings=TrainSettings(max_steps=1, batch_size=4, max_length=64),
    )
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = data.prepare(path, method=method, tokenizer=tokenizer, max_length=64).rows
    return trainers.build(
        job, tokenizer=tokenizer, train_rows=rows, test_rows=None, callbacks=[], scratch=tmp_path
    )


def pair_lines() -> list[bytes]:
    lines = [
        dpo_line(f"p{n}", f"Is {n} even? " * (n % 3 + 1), "yes it is", "yes it is not")
        for n in range(5)
    ]
    lines.append(dpo_line("other", "Pick one.", "red", "a long blue answer"))
    lines.append(dpo_line("same", "Say it.", "same", "same"))  # rejected == chosen
    lines.append(dpo_line("prefix", "Count.", "one two three", "one two"))  # a prefix
    return lines


def step(trainer, batch):
    """One forward and backward as a DPO step runs them; per-answer log-probs and gradients."""
    import torch

    trainer.model.zero_grad()
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    out = trainer.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=labels,
        fused_lm_head=True,
    )
    logps = out.log_probs.sum(dim=1)
    (logps * torch.linspace(-1, 1, len(logps))).sum().backward()  # every answer counts
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return logps.detach(), grads


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_pairs_give_trl_values_and_gradients(tiny_model_dir, tmp_path, attention):
    import torch

    from finetune.training import pairs

    trainer = build(tmp_path, tiny_model_dir, "dpo", pair_lines())
    pairs._backbone(trainer).config._attn_implementation = attention  # bool or additive mask
    for name, param in trainer.model.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op; make the adapter matter
            torch.nn.init.normal_(param, std=0.1, generator=torch.Generator().manual_seed(0))
    rows = trainer.train_dataset
    batch = trainer.data_collator([rows[i] for i in range(len(rows))])
    expected, expected_grads = step(trainer, batch)

    with pairs.shared_prefixes(trainer) as on:
        assert on
        got, grads = step(trainer, batch)
        chosen, rejected = pairs.pair_logps(trainer, rows, batch_size=3)

    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(torch.tensor(chosen + rejected), expected, atol=1e-4)
    assert chosen[6] == rejected[6]  # the identical pair
    for name, grad in expected_grads.items():
        assert torch.allclose(grads[name], grad, rtol=1e-4, atol=1e-6), name
    assert grads.keys() == expected_grads.keys()


def test_the_packed_batch_is_smaller(tiny_model_dir, tmp_path):
    from finetune.training import pairs

    trainer = build(tmp_path, tiny_model_dir, "dpo", pair_lines())
    rows = trainer.train_dataset
    batch = trainer.data_collator([rows[i] for i in range(len(rows))])
    packed = pairs.pack(batch["input_ids"], batch["attention_mask"])
    # 8 pairs: 16 rows padded to the longest sequence, against 8 rows of prompt + both answers.
    assert batch["input_ids"].numel() == 16 * batch["input_ids"].size(1)
    assert packed.input_ids.numel() < 0.7 * batch["input_ids"].numel()


def test_sft_and_unmaskable_attention_are_left_alone(tiny_model_dir, tmp_path):
    from finetune.training import pairs

    sft = build(tmp_path, tiny_model_dir, "sft", [sft_line("a", "Hi.", "Hello.")] * 4)
    with pairs.shared_prefixes(sft) as on:
        assert not on

    dpo = build(tmp_path, tiny_model_dir, "dpo", pair_lines())
    config = pairs._backbone(dpo).config
    config._attn_implementation = "flash_attention_2"
    with pairs.shared_prefixes(dpo) as on:
        assert not on
    assert not pairs._backbone(dpo)._forward_pre_hooks


@pytest.mark.parametrize("fails", [False, True])
def test_hooks_are_removed_after_the_block(tiny_model_dir, tmp_path, fails):
    from finetune.training import pairs

    trainer = build(tmp_path, tiny_model_dir, "dpo", pair_lines())
    backbone = pairs._backbone(trainer)
    try:
        with pairs.shared_prefixes(trainer):
            assert len(backbone._forward_pre_hooks) == 1
            if fails:
                raise RuntimeError("a failed step")
    except RuntimeError:
        pass
    assert not backbone._forward_pre_hooks
    assert not backbone._forward_hooks


def test_rows_longer_than_a_sliding_window_are_left_unpacked():
    """Qwen2 with a 4-token window: a custom mask would replace the window, so 10-token rows
    go as TRL lays them out (same values), and 4-token rows are still packed."""
    import types

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from finetune.training import pairs

    config = Qwen2Config(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True, sliding_window=4,
        max_window_layers=0, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    add_fused_lm_head(model)
    unwrap = types.SimpleNamespace(unwrap_model=lambda m: m)
    trainer = types.SimpleNamespace(compute_ref_log_probs=None, model=model, accelerator=unwrap)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 11, 12, 13]])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": torch.tensor([[0] * 7 + [1] * 3] * 2),
    }
    expected, _ = step(trainer, batch)
    short = {key: value[:, [0, 1, 2, 7]] for key, value in batch.items()}  # 1 2 3 8 | 1 2 3 11
    seen = []

    with pairs.shared_prefixes(trainer) as on:
        assert on
        # Registered after ours, so it sees the rows the backbone gets.
        model.model.register_forward_pre_hook(
            lambda m, a, k: seen.append(tuple(k["input_ids"].shape)), with_kwargs=True
        )
        got, _ = step(trainer, batch)
        step(trainer, short)

    assert torch.equal(got, expected)
    assert seen == [(2, 10), (1, 5)]  # unpacked; packed: prefix 3 + 1 + 1
