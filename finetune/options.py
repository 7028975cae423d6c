"""A run's settings as people and scripts give them: parsed and checked in one place.

The HTML form, the API serializer and the `finetune` command all describe their fields from
FIELDS, and all hand raw values to `parse`, so a bound or a default lives here once. Defaults
come from the trainer's own dataclasses (finetune.training.config, plain Python, no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from finetune.errors import InvalidRun
from finetune.training.config import LoraSettings, TrainSettings

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRUE = {"1", "true", "on", "yes"}
FALSE = {"0", "false", "off", "no", ""}


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # int, float, bool or tuple (of LoRA module names)
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    lora: bool = False  # a LoraSettings field, else a TrainSettings one
    optional: bool = False  # may be empty (None)

    @property
    def default(self) -> Any:
        return getattr(LoraSettings() if self.lora else TrainSettings(), self.name)


FIELDS = (
    Field("rank", int, 1, 1024, "LoRA rank r", lora=True),
    Field("alpha", int, 1, 4096, "LoRA alpha; the update is scaled by alpha / r", lora=True),
    Field("dropout", float, 0, 0.9, "dropout on the LoRA input", lora=True),
    Field("target_modules", tuple, help="linear layers that get an adapter", lora=True),
    Field("epochs", float, 0.01, 100, "passes over the train split"),
    Field("max_steps", int, 1, 1_000_000, "stop after this many steps (wins over epochs)",
          optional=True),
    Field("learning_rate", float, 1e-7, 1, "AdamW learning rate"),
    Field("batch_size", int, 1, 1024, "rows per step and device"),
    Field("gradient_accumulation", int, 1, 1024, "steps whose gradients add up to one update"),
    Field("max_length", int, 16, 131_072, "tokens per row; longer rows are left out"),
    Field("beta", float, 0.001, 10, "DPO: strength of the pull towards the base model"),
    Field("seed", int, 0, 2**31 - 1, "random seed"),
    Field("gradient_checkpointing", bool, help="recompute activations: less memory, slower"),
    Field("checkpoint_layers", int, 1, 1024, "with gradient checkpointing: recompute only the"
          " first N layers (empty: all); fewer is faster and takes more memory", optional=True),
    Field("packing", bool, help="SFT: pack short rows into one sequence"),
)  # fmt: skip
BY_NAME = {field.name: field for field in FIELDS}


def parse(values: Mapping[str, Any], *, method: str) -> tuple[LoraSettings, TrainSettings]:
    """Settings from raw values (strings or JSON); InvalidRun names every bad field."""
    errors: dict[str, str] = {}
    lora: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for field in FIELDS:
        raw = values.get(field.name)
        if raw is None or (raw == "" and field.kind is not bool):
            continue  # the default
        try:
            (lora if field.lora else train)[field.name] = _value(field, raw)
        except ValueError as error:
            errors[field.name] = str(error)
    if method != "sft" and train.get("packing"):
        errors["packing"] = "applies to SFT runs only"
    if train.get("checkpoint_layers") and not train.get("gradient_checkpointing"):
        errors["checkpoint_layers"] = "needs gradient_checkpointing on"
    unknown = sorted(set(values) - set(BY_NAME))
    errors.update(dict.fromkeys(unknown, "is not a setting"))
    if errors:
        raise InvalidRun(errors)
    return replace(LoraSettings(), **lora), replace(TrainSettings(), **train)


def _value(field: Field, raw: Any) -> Any:
    if field.kind is bool:
        return boolean(raw)
    if field.kind is tuple:
        return _modules(raw)
    try:
        number = field.kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"must be {'an integer' if field.kind is int else 'a number'}") from None
    if isinstance(raw, bool) or (field.kind is int and isinstance(raw, float)):
        raise ValueError("must be an integer")
    if field.minimum is not None and number < field.minimum:
        raise ValueError(f"must be at least {field.minimum:g}")
    if field.maximum is not None and number > field.maximum:
        raise ValueError(f"must be at most {field.maximum:g}")
    return number


def boolean(raw: Any) -> bool:
    """A flag from JSON or a form: true/false, on/off, 1/0, yes/no; ValueError otherwise."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise ValueError("must be true or false")


def _modules(raw: Any) -> tuple[str, ...]:
    names = raw.replace(",", " ").split() if isinstance(raw, str) else raw
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValueError("must be a list of module names")
    unknown = [name for name in names if name not in LORA_MODULES]
    if unknown:
        raise ValueError(f"unknown module {unknown[0]!r}; choose from {', '.join(LORA_MODULES)}")
    if not names:
        raise ValueError("name at least one module")
    return tuple(dict.fromkeys(names))  # in order, each once


def as_dicts(lora: LoraSettings, train: TrainSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON-ready dicts of both, for the run's row (tuples become lists)."""
    lora_dict = {f.name: getattr(lora, f.name) for f in fields(lora)}
    lora_dict["target_modules"] = list(lora.target_modules)
    return lora_dict, {f.name: getattr(train, f.name) for f in fields(train)}


def from_dicts(
    lora: Mapping[str, Any], train: Mapping[str, Any]
) -> tuple[LoraSettings, TrainSettings]:
    """The dataclasses back from a run's row (its settings were checked at launch)."""
    known = {f.name for f in fields(TrainSettings)}
    lora_settings = LoraSettings(**{**lora, "target_modules": tuple(lora["target_modules"])})
    return lora_settings, TrainSettings(**{k: v for k, v in train.items() if k in known})
