"""`manage.py create_tiny_model PATH`: a tiny Llama-style model folder for tests and demos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Write a tiny Llama-style Hugging Face model folder (about 200k parameters, random "
        "weights from --seed, safetensors) with a byte-level BPE tokenizer trained on local "
        "text and a chat template that marks assistant turns for assistant-only loss. "
        "Nothing is downloaded; the same seed gives byte-identical files. Needs the "
        "`finetune` extra. See docs/finetune.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="folder to create (must be empty or absent)")
        parser.add_argument("--seed", type=int, default=0, help="weights and corpus seed")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CommandError(f"{path} exists and is not an empty folder")
        # Imported here: torch and transformers are the `finetune` extra, not the web's.
        from finetune.training.tiny import create_tiny_model

        create_tiny_model(path, seed=options["seed"])
        self.stdout.write(f"tiny model written to {path}")
