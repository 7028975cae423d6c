"""Finetune benchmark: tokens/s and peak memory of LoRA SFT and DPO, ours beside plain TRL.

    .venv/bin/python bench/finetune.py [--model PATH | --arch NAME] [--checkpointing]
        [--checkpoint-layers N]
        [--trl-compact] [--steps 30] [--rows N] [--length 40 | --pairs HH-RLHF.jsonl.gz]
        [--repeats 3] [--variants ours-dpo trl-dpo]

Without --model it builds the tiny test model (finetune.training.tiny) in a temporary folder
and runs on CPU. `--arch` builds a random-weight model of a real model's shape instead
(`ARCHS`: the layer sizes and the full vocabulary size of the original, whose output layer is
much of the work; the tokenizer is the tiny one, so only its first ids ever occur). Each
variant runs in its own process, so memory belongs to that variant alone:

- ours-sft / ours-dpo: finetune.training.train() with its defaults (rank 16 on q/k/v/o,
  batch 4, fp32 on CPU, bf16 on a GPU, no gradient checkpointing unless `--checkpointing`),
  data written as our exporter writes it;
- trl-sft / trl-dpo: SFTTrainer / DPOTrainer with default configs and peft's default
  LoraConfig, on the same rows, same steps and batch size (use_cpu set on a CPU, since TRL's
  bf16 default refuses to run there), the weights loaded in the dtype ours uses (bf16 on a
  GPU that has it, as any TRL example loads them; fp32 on CPU). Defaults differ on purpose:
  SFT on `messages` trains on every token in TRL (`assistant_only_loss=False`), on the
  assistant's turns in ours, so TRL's output layer scores more positions. TRL 1.16's SFTConfig and
  DPOConfig default to `gradient_checkpointing=True` (TrainingArguments: False), so the
  baseline always checkpoints; `--checkpointing` makes ours do the same, at equal memory, and
  `--checkpoint-layers N` makes ours checkpoint only its first N layers (between the two).
  `--peft-lora` gives ours peft's default LoRA (rank 8 on q/v, no dropout) instead of its own
  (rank 16 on q/k/v/o, dropout 0.05): the training loop alone, same adapter on both sides.
  `--trl-compact` gives the baseline on CPU the output layer TRL uses on CUDA (it scores only
  the trained positions, as ours does everywhere), which takes out the gain that is CPU-only:
  the nearest this gets to the GPU comparison without a GPU.

Memory is taken over the training span only: from just before ours' DPO reference pass, or
TRL's `train()`, to the end (the marking itself is outside the timed span). `peak` is torch's
max allocated on a GPU, the peak resident set on CPU (Linux; reset at the span's start through
/proc/self/clear_refs). `added` is the peak minus what was in use at the start (weights, LoRA,
tokenized rows, libraries): activations, gradients, optimizer state, logits. On CPU the start
is read after `malloc_trim`, so heap that set-up freed is not counted as in use. With a
real-size model the weights dominate the peak and `added` is the figure to compare.

Both sides train on the same rows (by default exactly one epoch: rows = steps x batch), same
steps, same batch. tokens/s counts the non-padding tokens TRL reports (`num_tokens`: every
sequence of the batch, a DPO pair counting its prompt twice) over the training time; for ours
the training time includes the DPO reference pass done before the first step (the baseline
does it inside every step). `cpu` is the process's CPU time over the same span (1 torch
thread), much less disturbed than wall time by other load on the machine; on a GPU compare the
wall tokens/s. Each variant runs `--repeats` times, alternating; the table shows medians.
MFU (model FLOPs utilization: `model_flops_per_token` x tokens/s over the device's peak) is
printed on a known GPU or with `--peak-tflops`. Results go in docs/benchmarks.md ("## Finetune").
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")
WORDS = [
    "the",
    "model",
    "data",
    "train",
    "test",
    "good",
    "bad",
    "answer",
    "question",
    "river",
    "code",
    "story",
    "word",
]


def write_data(folder: Path, rows: int, words: int, pairs: Path | None) -> None:
    """Random words (`words` per prompt and per answer), or the first HH-RLHF pairs of `pairs`.

    HH-RLHF: each pair's shared turns are the prompt; SFT trains on the chosen answer. Pairs
    whose prompt and longer answer pass MAX_CHARS are skipped, so no row can reach either
    side's 1,024-token limit (TRL would truncate it, ours drop it) and both train on the same rows.
    """
    from tests.finetune.export_rows import dpo_line, sft_line, write

    if pairs is None:
        rng = random.Random(0)

        def text() -> str:
            return " ".join(rng.choice(WORDS) for _ in range(words))

        triples = [(text(), text(), text()) for _ in range(rows)]
    else:
        triples = _hh_rlhf(pairs, rows)
    write(folder / "sft.jsonl", [sft_line(f"s{n}", p, c) for n, (p, c, _) in enumerate(triples)])
    write(folder / "dpo.jsonl", [dpo_line(f"p{n}", *t) for n, t in enumerate(triples)])


MAX_CHARS = 1000


def _hh_rlhf(path: Path, rows: int) -> list[tuple[Any, str, str]]:
    """(conversation, chosen, rejected) from an HH-RLHF file, read as our importer reads it
    (pairs it refuses are skipped)."""
    import gzip

    from exports.rows import Message
    from labeling.importing.records import PAIRWISE, InvalidRecord, build_record

    triples: list[tuple[Any, str, str]] = []
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            try:
                record = build_record(json.loads(line), kind=PAIRWISE)
            except InvalidRecord:  # e.g. an empty last turn: our importer refuses it too
                continue
            turns = record["messages"]
            prompt = tuple(Message(role=m["role"], content=m["content"]) for m in turns)
            (_, chosen), (_, rejected) = record["responses"]
            size = sum(len(m["content"]) for m in prompt) + max(len(chosen), len(rejected))
            if size <= MAX_CHARS:
                triples.append((prompt, chosen, rejected))
            if len(triples) == rows:
                return triples
    raise SystemExit(f"{path} has fewer than {rows} pairs of at most {MAX_CHARS} characters")


def ours(method: str, options: argparse.Namespace) -> dict[str, Any]:
    """train() as the gpu worker runs it; `trainers.build` is wrapped only to mark memory."""
    from finetune.training import LoraSettings, TrainJob, TrainSettings, train, trainers

    start: list[int] = []
    build = trainers.build

    def marked(job: TrainJob, **kwargs: Any) -> Any:
        # runner.run starts its timed span right after this: mark outside it.
        trainer = build(job, **kwargs)
        start.append(memory_mark(trainer.model))
        return trainer

    trainers.build = marked
    settings = TrainSettings(
        max_steps=options.steps,
        batch_size=4,
        max_length=1024,
        gradient_checkpointing=options.checkpointing or options.checkpoint_layers is not None,
        checkpoint_layers=options.checkpoint_layers,
    )
    model, folder = options.model, options.folder
    # peft's LoraConfig defaults: rank 8, alpha 8, no dropout, q_proj and v_proj (Llama, Qwen2).
    peft = LoraSettings(rank=8, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
    job = TrainJob(
        method=method,  # type: ignore[arg-type]
        base_model=model,
        train_file=folder / f"{method}.jsonl",
        test_file=None,
        output_dir=folder / f"out-{method}",
        lora=peft if options.peft_lora else LoraSettings(),
        settings=settings,
    )
    metrics = train(job, lambda point: None, lambda: False).metrics
    return {
        "tokens": metrics["train_tokens"],
        "seconds": metrics["train_seconds"] + metrics["reference_seconds"],
        "reference_seconds": metrics["reference_seconds"],
        "cpu_seconds": metrics["train_cpu_seconds"],
        "peak_bytes": peak_memory(),
        "added_bytes": peak_memory() - start[0],
    }


def baseline(method: str, options: argparse.Namespace) -> dict[str, Any]:
    """TRL as it comes: its configs checkpoint by default, so `--checkpointing` changes nothing."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from finetune.training.trainers import precision, scored_answers_only

    model, folder, steps = options.model, options.folder, options.steps
    rows = load_dataset("json", data_files=str(folder / f"{method}.jsonl"), split="train")
    rows = rows.remove_columns(["id", "meta"])
    classes: tuple[Any, Any] = (
        (SFTConfig, SFTTrainer) if method == "sft" else (DPOConfig, DPOTrainer)
    )
    config_class, trainer_class = classes
    on_cpu = not torch.cuda.is_available()
    config = config_class(
        output_dir=str(folder / f"trl-{method}"), max_steps=steps, per_device_train_batch_size=4,
        report_to="none", save_strategy="no", use_cpu=on_cpu, bf16=not on_cpu, disable_tqdm=True,
    )  # fmt: skip
    trainer = trainer_class(
        AutoModelForCausalLM.from_pretrained(model, dtype=precision()[1]), args=config,
        train_dataset=rows, processing_class=AutoTokenizer.from_pretrained(model),
        peft_config=LoraConfig(),
    )  # fmt: skip
    start = memory_mark(trainer.model)
    started = time.process_time()
    with scored_answers_only() if options.trl_compact else contextlib.nullcontext():
        output = trainer.train()
    cpu = time.process_time() - started
    return {
        "tokens": int(max(log.get("num_tokens", 0) for log in trainer.state.log_history)),
        "seconds": output.metrics["train_runtime"],
        "cpu_seconds": cpu,
        "peak_bytes": peak_memory(),
        "added_bytes": peak_memory() - start,
    }


def memory_mark(model: Any) -> int:
    """Start of the training span: reset the peak and return the memory in use now.

    transformers maps the weights file and reads it lazily, so the weights become resident
    only as the first step reads them: touched here, they count as in use at the start.
    """
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.sum()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.memory_allocated())
    # Give freed heap back to the OS, or the resident set counts it as in use.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set
    return _proc_status("VmRSS")


def peak_memory() -> int:
    """Peak since memory_mark(): torch's max allocated on a GPU, the peak resident set on CPU."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return _proc_status("VmHWM")


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def one(variant: str, options: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    kind, method = variant.split("-")
    result = (ours if kind == "ours" else baseline)(method, options)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--arch", choices=ARCHS, help="random weights, a real model's shape")
    parser.add_argument("--checkpointing", action="store_true", help="ours too (TRL: always)")
    parser.add_argument(
        "--checkpoint-layers", type=int, help="ours: checkpoint only the first N layers"
    )
    parser.add_argument("--peft-lora", action="store_true", help="ours with peft's LoRA defaults")
    parser.add_argument("--trl-compact", action="store_true", help="TRL's CUDA LM head on CPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, help="default: steps x batch 4 (one epoch)")
    parser.add_argument("--length", type=int, default=40, help="words per prompt and answer")
    parser.add_argument("--pairs", type=Path, help="HH-RLHF .jsonl(.gz): real rows, not words")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument(
        "--peak-tflops", type=float, help="the device's dense bf16 peak for MFU (GPU: looked up)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        return one(options.one, options)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = options.model or _build(folder / "model", options.arch)
        write_data(folder, options.rows or options.steps * 4, options.length, options.pairs)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in options.variants}
        for _ in range(options.repeats):
            for variant in options.variants:
                runs[variant].append(_spawn(variant, model, folder, options))
                print(variant, json.dumps(runs[variant][-1]), flush=True)
        flops = model_flops_per_token(model)
    _print(runs, flops, options.peak_tflops)


VARIANTS = ("ours-sft", "trl-sft", "ours-dpo", "trl-dpo")
# model_type and config of real models, vocabulary size included (the output layer's share).
ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    # Qwen2.5-0.5B: 494M parameters, 136M of them the (tied) embedding.
    "qwen2.5-0.5b": ("qwen2", {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
    }),
    # A Llama-style 125M (GPT-2 small widths, Llama-2 vocabulary): runs in minutes on a CPU.
    "llama-125m": ("llama", {
        "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
        "num_attention_heads": 12, "num_key_value_heads": 4, "vocab_size": 32000,
        "tie_word_embeddings": False,
    }),
}  # fmt: skip


def _build(path: Path, arch: str | None) -> Path:
    from finetune.training.tiny import build_tokenizer, create_tiny_model

    if arch is None:
        return create_tiny_model(path, seed=0)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = build_tokenizer(seed=0)
    model_type, sizes = ARCHS[arch]
    assert sizes["vocab_size"] >= len(tokenizer)
    ids = {f"{n}_token_id": getattr(tokenizer, f"{n}_token_id") for n in ("bos", "eos", "pad")}
    config = AutoConfig.for_model(model_type, **sizes, **ids, max_position_embeddings=2048)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    for name, value in ids.items():
        setattr(model.generation_config, name, value)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def _spawn(variant: str, model: Path, folder: Path, options: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", variant, "--model", str(model)]
    command += ["--folder", str(folder), "--steps", str(options.steps)]
    command += ["--checkpointing"] * options.checkpointing + ["--trl-compact"] * options.trl_compact
    command += ["--peft-lora"] * options.peft_lora
    if options.checkpoint_layers is not None:
        command += ["--checkpoint-layers", str(options.checkpoint_layers)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a name's part as torch reports it.
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 70.0}


def model_flops_per_token(model: Path) -> dict[str, int]:
    """FLOPs a counted token costs in LoRA SFT and in DPO, from the model's config.

    N = the parameters a token's matmuls use (all but the input embedding, unless it is tied
    to the output layer). LoRA training: forward 2N plus the activation gradients 2N (the base
    weights get no gradient; the adapters' share is negligible) = 4N; DPO adds the reference
    forward, 2N. Attention's sequence-length term and checkpointing's recompute are left out,
    as MFU conventionally does: the same work counts the same for both sides.
    """
    from finetune.estimate import Architecture

    arch = Architecture.from_config(json.loads((model / "config.json").read_text()))
    n = arch.parameters() - (0 if arch.tied_embeddings else arch.vocab * arch.hidden)
    return {"sft": 4 * n, "dpo": 6 * n}


def peak_flops(given: float | None) -> float | None:
    """The device's peak FLOP/s: --peak-tflops, else looked up for a known GPU, else None."""
    if given:
        return given * 1e12
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tf * 1e12 for part, tf in PEAK_TFLOPS.items() if part in name), None)


def _print(
    runs: dict[str, list[dict[str, Any]]], flops: dict[str, int], peak_tflops: float | None
) -> None:
    rates: dict[str, float] = {}
    peak = peak_flops(peak_tflops)
    print(
        "| variant | tokens | train s | tokens/s | CPU s | tokens/CPU s | peak MiB | added MiB"
        " | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, results in runs.items():
        tokens = median([r["tokens"] for r in results])
        seconds = median([r["seconds"] for r in results])
        cpu = median([r["cpu_seconds"] for r in results])
        rate = median([r["tokens"] / r["seconds"] for r in results])
        rates[variant] = cpu_rate = median([r["tokens"] / r["cpu_seconds"] for r in results])
        mib = median([r["peak_bytes"] for r in results]) / 2**20
        added = median([r["added_bytes"] for r in results]) / 2**20
        mfu = f"{rate * flops[variant.split('-')[1]] / peak:.1%}" if peak else "-"
        print(
            f"| {variant} | {tokens:.0f} | {seconds:.2f} | {rate:.0f} | {cpu:.2f} "
            f"| {cpu_rate:.0f} | {mib:.0f} | {added:.0f} | {mfu} |"
        )
    for method in ("sft", "dpo"):
        if f"ours-{method}" in rates and f"trl-{method}" in rates:
            ratio = rates[f"ours-{method}"] / rates[f"trl-{method}"]
            print(f"{method}: ours / plain TRL, tokens per CPU second = {ratio:.2f}")


if __name__ == "__main__":
    main()
