"""train(): the interface the gpu worker calls, on the tiny model, on CPU.

Learning itself is shown in test_learning.py; these tests pin what a run leaves behind (the
adapter, the report, the rows it dropped and why), what it reports while it runs, and how it
stops when asked.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from finetune.training import (
    Cancelled,
    LoraSettings,
    TrainingError,
    TrainJob,
    TrainSettings,
    train,
)
from tests.finetune.export_rows import dpo_line, sft_line, write

LORA = LoraSettings(rank=4, alpha=8, dropout=0.0)
QUIET = TrainSettings(
    max_steps=3, batch_size=2, max_length=64, learning_rate=1e-3, report_every_s=0.0
)


def sft_lines() -> list[bytes]:
    lines = [sft_line(f"s{n}", f"Add {n} and {n}.", f"{n} + {n} = {2 * n}.") for n in range(6)]
    lines.append(sft_line("long", "word " * 80, "too long"))  # about 90 tokens > 64
    lines.append(sft_line("blank", "Say nothing.", "   "))
    return lines


def dpo_lines() -> list[bytes]:
    return [
        dpo_line(f"p{n}", f"Is {n} even?", "yes" if n % 2 == 0 else "no", "maybe") for n in range(6)
    ]


def job(tmp_path: Path, model: Path, method: str, lines: list[bytes], **settings) -> TrainJob:
    data = write(tmp_path / f"{method}.jsonl", lines)
    return TrainJob(
        method=method,
        base_model=model,
        train_file=data,
        test_file=data,
        output_dir=tmp_path / "run",
        lora=LORA,
        settings=TrainSettings(**{**QUIET.__dict__, **settings}),
    )


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_create_tiny_model_is_deterministic(tiny_model_dir, tmp_path):
    call_command("create_tiny_model", str(tmp_path / "again"), "--seed", "0")
    assert files(tmp_path / "again") == files(tiny_model_dir)
    assert sorted(files(tiny_model_dir)) == [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_tiny_chat_template_masks_assistant_turns(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    # The answer and its end-of-turn token are trained; the header and the prompt are not.
    assert tokenizer.decode(masked) == "Hello<|eot_id|>"
    assert tokenizer.decode(out["input_ids"][:1]) == "<|begin_of_text|>"


def test_sft_writes_adapter_and_report(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    reports = []
    result = train(job(tmp_path, tiny_model_dir, "sft", sft_lines()), reports.append, lambda: False)

    assert result.adapter_dir == tmp_path / "run" / "adapter"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "adapter",
        "training_report.json",
    ]
    assert sorted(files(result.adapter_dir)) == [
        "README.md",  # peft's model card
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert result.metrics["rows"] == {"train": 6, "test": 6}
    assert result.metrics["dropped"]["train"] == {"malformed": 0, "empty": 1, "too_long": 1}
    assert result.metrics["steps"] == 3
    assert [r["step"] for r in reports] == [1, 2, 3]
    assert set(reports[-1]) == {
        "step", "total_steps", "loss", "learning_rate", "grad_norm", "tokens", "tokens_per_s",
        "seconds",
    }  # fmt: skip
    assert set(result.metrics["eval"]) == {"rows", "loss", "base_loss"}

    report = json.loads((tmp_path / "run" / "training_report.json").read_text())
    data = tmp_path / "sft.jsonl"
    assert report["data_sha256"] == {"train": hashlib.sha256(data.read_bytes()).hexdigest()} | {
        "test": hashlib.sha256(data.read_bytes()).hexdigest()
    }
    assert report["job"]["lora"]["rank"] == 4
    assert report["metrics"]["versions"]["trl"] == "1.16.0"
    assert report["metrics"]["device"]["type"] == "cpu"
    assert report["metrics"]["dtype"] == "float32"

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    loaded = PeftModel.from_pretrained(base, result.adapter_dir)
    saved = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert len(saved) == 2 * 2 * 4  # 2 layers x 4 projections x (A, B)
    state = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert len(state) == len(saved)


def test_same_job_gives_the_same_adapter(tiny_model_dir, tmp_path):
    first = train(job(tmp_path, tiny_model_dir, "sft", sft_lines()), print, lambda: False)
    before = files(first.adapter_dir)
    second = train(job(tmp_path, tiny_model_dir, "sft", sft_lines()), print, lambda: False)
    assert files(second.adapter_dir) == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "adapter",
        "training_report.json",
    ]


def test_reports_are_rate_limited_but_the_last_step_always_reports(tiny_model_dir, tmp_path):
    reports = []
    run = job(tmp_path, tiny_model_dir, "sft", sft_lines(), report_every_s=3600.0)
    train(run, reports.append, lambda: False)
    assert [r["step"] for r in reports] == [1, 3]


def test_dpo_trains_against_the_adapter_disabled_base(tiny_model_dir, tmp_path):
    reports = []
    result = train(job(tmp_path, tiny_model_dir, "dpo", dpo_lines()), reports.append, lambda: False)
    assert result.metrics["rows"] == {"train": 6, "test": 6}
    assert {"rewards/accuracies", "rewards/margins"} <= set(reports[-1])
    assert set(result.metrics["eval"]) == {
        "rows", "loss", "rewards/accuracies", "rewards/margins", "preference_accuracy",
        "base_preference_accuracy",
    }  # fmt: skip
    # Only the adapter is trainable and no reference copy exists: parameters are counted once.
    parameters = result.metrics["parameters"]
    assert parameters["trainable"] == 2 * 4 * 4 * (64 + 64) - 2 * 2 * 4 * (64 - 32)
    assert parameters["total"] == 205120 + parameters["trainable"]


def test_should_stop_cancels_without_an_adapter(tiny_model_dir, tmp_path):
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) >= 3  # once before training, then after steps 1 and 2

    with pytest.raises(Cancelled, match="stopped after step 2"):
        train(job(tmp_path, tiny_model_dir, "sft", sft_lines()), print, should_stop)
    assert list((tmp_path / "run").iterdir()) == []


def test_no_usable_rows_is_an_error(tiny_model_dir, tmp_path):
    lines = [sft_line("blank", "Say nothing.", " "), b'{"messages": "not a list"}\n']
    with pytest.raises(TrainingError, match=r"no usable training rows .*: malformed \(1\), empty"):
        train(job(tmp_path, tiny_model_dir, "sft", lines), print, lambda: False)


def test_importing_the_package_loads_no_torch():
    code = "import sys, finetune.training; print('torch' in sys.modules)"
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    assert out.stdout == "False\n"


@pytest.mark.parametrize("packed", [False, True])
def test_dpo_reference_is_precomputed_as_trl_computes_it_per_step(tiny_model_dir, tmp_path, packed):
    import contextlib

    import torch
    from transformers import AutoTokenizer

    from finetune.training import data, pairs, trainers

    run = job(tmp_path, tiny_model_dir, "dpo", [*dpo_lines(), dpo_line("x", "Why? " * 9, "a", "b")])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = data.prepare(run.train_file, method="dpo", tokenizer=tokenizer, max_length=64).rows
    trainer = trainers.build(
        run, tokenizer=tokenizer, train_rows=rows, test_rows=rows, callbacks=[], scratch=tmp_path
    )
    dataset = trainer.train_dataset
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    chosen, rejected = trainer.compute_ref_log_probs(trainer.model, batch)  # TRL's per-step pass

    with pairs.shared_prefixes(trainer) if packed else contextlib.nullcontext():
        assert trainers.precompute_reference(trainer, batch_size=3) > 0
    assert trainer.precompute_ref_logps
    for split in (trainer.train_dataset, trainer.eval_dataset):
        assert torch.allclose(torch.tensor(split["ref_chosen_logps"]), chosen, atol=1e-4)
        assert torch.allclose(torch.tensor(split["ref_rejected_logps"]), rejected, atol=1e-4)


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_batches_hold_rows_of_similar_length(tiny_model_dir, tmp_path, method):
    """200 rows of 1 to 40 words in random order: each batch spans a few tokens, not 40 words."""
    import random

    import torch
    from transformers import AutoTokenizer

    from finetune.training import data, trainers

    rng = random.Random(1)
    texts = [" ".join(["word"] * rng.randint(1, 40)) for _ in range(200)]
    if method == "sft":
        lines = [sft_line(f"s{n}", "Say:", text) for n, text in enumerate(texts)]
    else:
        lines = [dpo_line(f"p{n}", "Say:", text, text + " no") for n, text in enumerate(texts)]
    run = job(tmp_path, tiny_model_dir, method, lines, batch_size=4, max_length=128)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = data.prepare(run.train_file, method=method, tokenizer=tokenizer, max_length=128).rows
    trainer = trainers.build(
        run, tokenizer=tokenizer, train_rows=rows, test_rows=None, callbacks=[], scratch=tmp_path
    )
    torch.manual_seed(0)
    batches = list(trainer.get_train_dataloader())
    assert sum(len(b["input_ids"]) for b in batches) == 200 * (1 if method == "sft" else 2)
    padded = sum(int((b["attention_mask"] == 0).sum()) for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    # Random batches of 1-40 words pad about a fifth (22% here); grouped by length, a few percent.
    assert padded / (padded + real) < 0.05, (padded, real)


def test_checkpoint_layers_recomputes_only_the_first_layers(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer
    from transformers.modeling_layers import GradientCheckpointingLayer

    from finetune.training import data, trainers

    run = job(
        tmp_path, tiny_model_dir, "sft", sft_lines(), max_steps=1, gradient_checkpointing=True,
        checkpoint_layers=1,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = data.prepare(run.train_file, method="sft", tokenizer=tokenizer, max_length=64).rows
    trainer = trainers.build(
        run, tokenizer=tokenizer, train_rows=rows, test_rows=None, callbacks=[], scratch=tmp_path
    )
    layers = [m for m in trainer.model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert [layer.gradient_checkpointing for layer in layers] == [False, False]
    ran: list[int] = []
    for index, layer in enumerate(layers):
        layer.mlp.register_forward_pre_hook(lambda *_, i=index: ran.append(i))

    trainer.train()

    assert [layer.gradient_checkpointing for layer in layers] == [True, False]
    # One step: each layer runs forward once, and layer 0 once more in the backward pass.
    assert ran == [0, 1, 0]
