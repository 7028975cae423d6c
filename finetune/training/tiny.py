"""A tiny Llama-style model with a locally trained tokenizer, for tests, demos and benchmarks.

No model hub is reachable from these machines, so the test suite cannot download even the
smallest real checkpoint. This builds one from a config: random weights from a seeded
generator, a byte-level BPE tokenizer trained on local text (the MT-Bench demo questions and
answers plus a generated corpus), and a Llama-3-style chat template whose assistant turns sit
in `{% generation %}` blocks so that TRL can mask the loss to them. Byte-level means any
text tokenizes (no unknown tokens). The same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEMO_DATA = Path(__file__).resolve().parents[2] / "labeling" / "demo_data"

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
HEADER_START, HEADER_END, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, HEADER_START, HEADER_END, EOT]

# The end-of-turn token is inside the generation block: the model must learn to stop.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n' }}"
    "{%- generation %}{{- message['content'] + '<|eot_id|>' }}{%- endgeneration %}"
    "{%- else %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n'"
    " + message['content'] + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n' }}"
    "{%- endif %}"
)

_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "in",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "this",
    "by",
    "at",
    "from",
    "or",
    "not",
    "what",
    "why",
    "how",
    "when",
    "which",
    "who",
    "yes",
    "no",
    "true",
    "false",
    "answer",
    "question",
    "explain",
    "write",
    "list",
    "short",
    "long",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "red",
    "blue",
    "green",
    "apple",
    "river",
    "model",
    "data",
    "train",
    "test",
    "good",
    "bad",
    "better",
    "best",
    "worse",
    "please",
    "thanks",
    "hello",
    "world",
    "cat",
    "dog",
    "sun",
    "moon",
    "code",
    "python",
    "function",
    "number",
    "letter",
    "word",
    "sentence",
    "story",
    "poem",
]


def generated_corpus(seed: int, lines: int = 2000) -> Iterator[str]:
    """Simple sentences and arithmetic, so common words and digits get their own tokens."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    for _ in range(lines):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        yield f"{words.capitalize()}. {a} + {b} = {a + b}."


def demo_corpus() -> Iterator[str]:
    """Every string in the demo JSONL files (questions, turns, reference answers)."""
    for path in sorted(DEMO_DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield from _strings(json.loads(line))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for entry in value:
            yield from _strings(entry)
    elif isinstance(value, dict):
        for entry in value.values():
            yield from _strings(entry)


def build_tokenizer(seed: int, vocab_size: int = 1024) -> Any:
    """Train a byte-level BPE on the local corpus and wrap it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([*demo_corpus(), *generated_corpus(seed)], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOT, pad_token=PAD
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(vocab_size: int, seed: int, *, hidden: int = 64, layers: int = 2) -> Any:
    """A Llama decoder small enough to train on a CPU in seconds; weights from `seed`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return LlamaForCausalLM(config)
    finally:
        # Leave the caller's random stream as it was: building a fixture must not shift tests.
        torch.random.set_rng_state(generator_state)


def create_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Write a Hugging Face model folder (config, safetensors weights, tokenizer) to `path`."""
    tokenizer = build_tokenizer(seed)
    model = build_model(len(tokenizer), seed)
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
