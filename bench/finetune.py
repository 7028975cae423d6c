"""Finetune benchmark: tokens/s and peak memory of LoRA SFT and DPO, ours beside plain TRL.

    .venv/bin/python bench/finetune.py [--model PATH] [--steps 30] [--rows N] [--length 40]
        [--repeats 3] [--variants ours-dpo trl-dpo]

Without --model it builds the tiny test model (finetune.training.tiny) in a temporary folder
and runs on CPU. Each variant runs in its own process, so peak memory (GPU: torch's max
allocated; CPU: the process's peak RSS) belongs to that variant alone:

- ours-sft / ours-dpo: finetune.training.train() with its defaults (rank 16 on q/k/v/o,
  batch 4, fp32 on CPU, bf16 on a GPU), data written as our exporter writes it;
- trl-sft / trl-dpo: SFTTrainer / DPOTrainer with default configs and peft's default
  LoraConfig, on the same rows, same steps and batch size (use_cpu set on a CPU, since TRL's
  bf16 default refuses to run there).

Both sides train on the same rows (by default exactly one epoch: rows = steps x batch), same
steps, same batch. tokens/s counts the non-padding tokens TRL reports (`num_tokens`: every
sequence of the batch, a DPO pair counting its prompt twice) over the training time; for ours
the training time includes the DPO reference pass done before the first step (the baseline
does it inside every step). `cpu` is the process's CPU time over the same span (1 torch
thread), much less disturbed than wall time by other load on the machine; on a GPU compare the
wall tokens/s. Each variant runs
`--repeats` times, alternating; the table shows medians. Results go in docs/benchmarks.md
("## Finetune").
"""

from __future__ import annotations

import argparse
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


def write_data(folder: Path, rows: int, words: int) -> None:
    from tests.finetune.export_rows import dpo_line, sft_line, write

    rng = random.Random(0)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    write(folder / "sft.jsonl", [sft_line(f"s{n}", text(), text()) for n in range(rows)])
    write(folder / "dpo.jsonl", [dpo_line(f"p{n}", text(), text(), text()) for n in range(rows)])


def ours(method: str, model: Path, folder: Path, steps: int) -> dict[str, Any]:
    from finetune.training import TrainJob, TrainSettings, train

    job = TrainJob(
        method=method,  # type: ignore[arg-type]
        base_model=model,
        train_file=folder / f"{method}.jsonl",
        test_file=None,
        output_dir=folder / f"out-{method}",
        settings=TrainSettings(max_steps=steps, batch_size=4, max_length=1024),
    )
    metrics = train(job, lambda point: None, lambda: False).metrics
    return {
        "tokens": metrics["train_tokens"],
        "seconds": metrics["train_seconds"] + metrics["reference_seconds"],
        "cpu_seconds": metrics["train_cpu_seconds"],
        "peak_bytes": metrics["peak_memory_bytes"],
    }


def baseline(method: str, model: Path, folder: Path, steps: int) -> dict[str, Any]:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from finetune.training.output import peak_memory_bytes

    rows = load_dataset("json", data_files=str(folder / f"{method}.jsonl"), split="train")
    rows = rows.remove_columns(["id", "meta"])
    config_class, trainer_class = (
        (SFTConfig, SFTTrainer) if method == "sft" else (DPOConfig, DPOTrainer)
    )
    cpu = not torch.cuda.is_available()
    config = config_class(
        output_dir=str(folder / f"trl-{method}"), max_steps=steps, per_device_train_batch_size=4,
        report_to="none", save_strategy="no", use_cpu=cpu, bf16=not cpu, disable_tqdm=True,
    )  # fmt: skip
    trainer = trainer_class(
        AutoModelForCausalLM.from_pretrained(model), args=config, train_dataset=rows,
        processing_class=AutoTokenizer.from_pretrained(model), peft_config=LoraConfig(),
    )  # fmt: skip
    started = time.process_time()
    output = trainer.train()
    cpu = time.process_time() - started
    return {
        "tokens": int(max(log.get("num_tokens", 0) for log in trainer.state.log_history)),
        "seconds": output.metrics["train_runtime"],
        "cpu_seconds": cpu,
        "peak_bytes": peak_memory_bytes(),
    }


def one(variant: str, model: Path, folder: Path, steps: int) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    kind, method = variant.split("-")
    result = (ours if kind == "ours" else baseline)(method, model, folder, steps)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, help="default: steps x batch 4 (one epoch)")
    parser.add_argument("--length", type=int, default=40, help="words per prompt and answer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        return one(options.one, options.model, options.folder, options.steps)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = options.model or _tiny(folder / "tiny")
        write_data(folder, options.rows or options.steps * 4, options.length)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in options.variants}
        for _ in range(options.repeats):
            for variant in options.variants:
                runs[variant].append(_spawn(variant, model, folder, options.steps))
                print(variant, json.dumps(runs[variant][-1]), flush=True)
    _print(runs)


VARIANTS = ("ours-sft", "trl-sft", "ours-dpo", "trl-dpo")


def _tiny(path: Path) -> Path:
    from finetune.training.tiny import create_tiny_model

    return create_tiny_model(path, seed=0)


def _spawn(variant: str, model: Path, folder: Path, steps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", variant, "--model", str(model)]
    command += ["--folder", str(folder), "--steps", str(steps)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def _print(runs: dict[str, list[dict[str, Any]]]) -> None:
    rates: dict[str, float] = {}
    print("| variant | tokens | train s | tokens/s | CPU s | tokens/CPU s | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for variant, results in runs.items():
        tokens = median([r["tokens"] for r in results])
        seconds = median([r["seconds"] for r in results])
        cpu = median([r["cpu_seconds"] for r in results])
        rate = median([r["tokens"] / r["seconds"] for r in results])
        rates[variant] = cpu_rate = median([r["tokens"] / r["cpu_seconds"] for r in results])
        mib = median([r["peak_bytes"] for r in results]) / 2**20
        print(
            f"| {variant} | {tokens:.0f} | {seconds:.2f} | {rate:.0f} | {cpu:.2f} "
            f"| {cpu_rate:.0f} | {mib:.0f} |"
        )
    for method in ("sft", "dpo"):
        if f"ours-{method}" in rates and f"trl-{method}" in rates:
            ratio = rates[f"ours-{method}"] / rates[f"trl-{method}"]
            print(f"{method}: ours / plain TRL, tokens per CPU second = {ratio:.2f}")


if __name__ == "__main__":
    main()
