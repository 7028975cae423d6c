"""`manage.py demo_model`: the demo's tiny model in the models directory, made once.

`manage.py demo` calls it by name (labeling imports nothing of finetune). Without the finetune
extra it says so and does nothing: torch is looked up, never imported, here; the model is
written by `create_tiny_model`, which imports it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from finetune import paths

DEMO_MODEL = "tiny-llama"


class Command(BaseCommand):
    help = (
        f"Create the demo's tiny model as FINETUNE_MODELS_DIR/{DEMO_MODEL} unless it is there. "
        "Skipped (with a note) when torch is not installed (the `finetune` extra)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        target = paths.models_dir() / DEMO_MODEL
        if (target / "config.json").is_file():
            self.stdout.write(f"Demo model: {target}")
            return
        if importlib.util.find_spec("torch") is None:
            self.stdout.write("Demo model skipped: install the finetune extra to train adapters.")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        call_command("create_tiny_model", str(target), stdout=self.stdout)
