"""How much accelerator memory a LoRA run needs, from the model's config.json alone. Pure.

The estimate adds up (bytes):
- weights: every base parameter at the config's dtype (float32 when it names none);
- LoRA: the adapter's parameters, their gradients and AdamW's two moments, all float32 (peft
  keeps adapters in float32 even on a 16-bit base model), so 16 bytes a trainable parameter;
- activations kept for the backward pass, per token and layer: the two norm inputs and outputs
  (4 hidden), q, k, v and the attention output (2 (heads + kv heads) head_dim), the MLP's gate,
  up and product (3 intermediate), and each adapted module's input and its rank-r middle. With
  gradient checkpointing only each layer's input is kept, plus one layer recomputed at a time;
  with `checkpoint_layers` N < layers, the first N keep their input and the rest keep it all
  (freed in the backward pass before a recomputed layer runs again);
- logits: float32 logits over the vocabulary and their gradient (the loss upcasts them);
- DPO: chosen and rejected rows go through together (counted as twice the tokens: a bound,
  since each pair's shared prompt goes through once, training/pairs.py), and the reference
  model is the same weights with the adapter disabled, so there is no second copy of the
  weights, only the reference forward's float32 logits and one layer's activations (no grad);
- 10% on top for the allocator's fragmentation and framework buffers.
Attention scores are not counted: SDPA/flash attention never store the seq x seq matrix.
It is an estimate for refusing hopeless runs, not a promise: it has not yet been checked
against a measured GPU peak (training_report.json records `peak_memory_bytes` for that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from finetune.errors import InvalidRun
from finetune.training.config import LoraSettings, TrainSettings

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
ADAPTER_BYTES = 4  # float32 adapter weights
PER_TRAINABLE = 4 * ADAPTER_BYTES  # weight, gradient, AdamW exp_avg and exp_avg_sq
LOGIT_BYTES = 4
GIB = 1024**3


@dataclass(frozen=True)
class Architecture:
    """The shape of a Llama-style decoder (Llama, Mistral, Qwen2, Gemma, ... configs)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    attention_bias: bool
    dtype: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Architecture:
        """Read config.json's fields; InvalidRun names a missing or bad one."""
        hidden, heads = _int(config, "hidden_size"), _int(config, "num_attention_heads")
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
        if dtype not in DTYPE_BYTES:
            raise InvalidRun({"base_model": f"config.json: dtype {dtype!r} is not supported"})
        return cls(
            hidden=hidden,
            intermediate=_int(config, "intermediate_size"),
            layers=_int(config, "num_hidden_layers"),
            heads=heads,
            kv_heads=_int(config, "num_key_value_heads", heads),
            head_dim=_int(config, "head_dim", hidden // heads),
            vocab=_int(config, "vocab_size"),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", False)),
            dtype=dtype,
        )

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def modules(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        h, q, kv, i = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.intermediate,
        )
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }  # fmt: skip

    def parameters(self) -> int:
        linear = sum(n_in * n_out for n_in, n_out in self.modules().values())
        bias = 2 * (self.heads + self.kv_heads) * self.head_dim if self.attention_bias else 0
        per_layer = linear + bias + 2 * self.hidden  # two RMSNorm weights
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * per_layer + self.hidden  # the final norm

    def activation_elements(self) -> int:
        """Values one token keeps per layer for the backward pass, adapters aside."""
        attention = 2 * (self.heads + self.kv_heads) * self.head_dim
        return 4 * self.hidden + attention + 3 * self.intermediate


def _int(config: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRun({"base_model": f"config.json: {name} must be a positive integer"})
    return value


@dataclass(frozen=True)
class Estimate:
    parameters: int
    trainable_parameters: int
    weights: int
    adapter: int  # LoRA weights, gradients and optimizer states
    activations: int
    logits: int
    reference: int  # DPO's reference forward; 0 for SFT
    overhead: int

    @property
    def total(self) -> int:
        return sum(bytes_ for _, bytes_ in self.parts())

    def parts(self) -> list[tuple[str, int]]:
        return [
            ("Base weights", self.weights),
            ("LoRA weights, gradients, AdamW", self.adapter),
            ("Activations", self.activations),
            ("Logits", self.logits),
            ("Reference forward (DPO)", self.reference),
            ("Allocator and buffers", self.overhead),
        ]

    def fits(self, memory: int) -> bool:
        return self.total <= memory

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"total": self.total}


def estimate(
    config: Mapping[str, Any], lora: LoraSettings, train: TrainSettings, *, method: str
) -> Estimate:
    """Peak memory of one training step, in bytes (see the module's docstring)."""
    arch = Architecture.from_config(config)
    modules = arch.modules()
    trainable = arch.layers * sum(lora.rank * sum(modules[m]) for m in lora.target_modules)
    tokens = train.batch_size * train.max_length * (2 if method == "dpo" else 1)
    adapted = sum(modules[m][0] + lora.rank for m in lora.target_modules)
    layer = arch.activation_elements() + adapted
    recomputed = checkpointed_layers(arch, train)
    # Layers that are not recomputed hold everything until the backward pass frees it, before
    # the first recomputed layer runs again; with every layer recomputed, one at a time does.
    held = max(arch.layers - recomputed, min(recomputed, 1))
    kept = recomputed * arch.hidden + held * layer
    logits = tokens * arch.vocab * LOGIT_BYTES
    reference = tokens * arch.activation_elements() * arch.dtype_bytes + logits
    parts = {
        "weights": arch.parameters() * arch.dtype_bytes,
        "adapter": trainable * PER_TRAINABLE,
        "activations": tokens * kept * arch.dtype_bytes,
        "logits": 2 * logits,
        "reference": reference if method == "dpo" else 0,
    }
    overhead = sum(parts.values()) // 10
    return Estimate(arch.parameters(), trainable, overhead=overhead, **parts)


def checkpointed_layers(arch: Architecture, train: TrainSettings) -> int:
    """How many layers recompute their activations; InvalidRun if the model has fewer."""
    if not train.gradient_checkpointing:
        return 0
    if train.checkpoint_layers is None:
        return arch.layers
    if train.checkpoint_layers > arch.layers:
        reason = f"is more than the model's {arch.layers} layers"
        raise InvalidRun({"checkpoint_layers": reason})
    return train.checkpoint_layers


def fewest_checkpointed(
    config: Mapping[str, Any], lora: LoraSettings, train: TrainSettings, *, method: str, memory: int
) -> int | None:
    """The fewest layers to recompute for the run to fit in `memory` (0: none need be); None
    if it does not fit even with every layer recomputed."""
    for count in range(Architecture.from_config(config).layers + 1):
        tried = replace(train, gradient_checkpointing=count > 0, checkpoint_layers=count or None)
        if estimate(config, lora, tried, method=method).fits(memory):
            return count
    return None


def gib(size: int) -> str:
    """Bytes as GiB for people, e.g. "12.6 GiB"; small sizes as MiB."""
    if size < GIB:
        return f"{size / 1024**2:.1f} MiB"
    return f"{size / GIB:.1f} GiB"
