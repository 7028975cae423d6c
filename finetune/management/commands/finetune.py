"""`manage.py finetune --export ID --method dpo --base-model PATH [...] [--wait]`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.models import Export
from finetune import services
from finetune.errors import InvalidRun
from finetune.estimate import gib
from finetune.models import FinetuneRun
from finetune.options import FIELDS, LORA_MODULES
from labeling.progress import progress_bar

POLL_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Queue a LoRA finetune of a base model (a folder in FINETUNE_MODELS_DIR) on a "
        "succeeded export: --method sft on an sft export, dpo on a dpo export. It prints the "
        "memory estimate and refuses a run that cannot fit unless --force. A gpu worker "
        "trains it (docs/finetune.md); --wait follows it with a progress bar and exits "
        "non-zero unless it succeeds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--export", required=True, type=int, metavar="ID", help="export id")
        parser.add_argument("--method", required=True, choices=["sft", "dpo"])
        parser.add_argument("--base-model", required=True, metavar="PATH", help="model folder")
        parser.add_argument("--force", action="store_true", help="launch even if it won't fit")
        parser.add_argument("--wait", action="store_true", help="wait until the run finishes")
        settings = parser.add_argument_group("LoRA and training settings")
        for field in FIELDS:
            flag = "--" + field.name.replace("_", "-")
            if field.kind is bool:
                settings.add_argument(flag, action="store_true", default=None, help=field.help)
            elif field.kind is tuple:
                settings.add_argument(
                    flag, nargs="+", metavar="MODULE", help=f"{', '.join(LORA_MODULES)}"
                )
            else:
                settings.add_argument(flag, metavar=field.kind.__name__.upper(), help=field.help)

    def handle(self, *args: Any, **options: Any) -> None:
        export = Export.objects.select_related("project").filter(pk=options["export"]).first()
        if export is None:
            raise CommandError(f"--export: no export with the id {options['export']}")
        data = {field.name: options[field.name] for field in FIELDS}
        data = {key: value for key, value in data.items() if value is not None}
        data |= {"export": export.pk, "method": options["method"]}
        data |= {"base_model": options["base_model"], "force": options["force"]}
        try:
            plan, force = services.plan_request(project=export.project, data=data)
            self.stdout.write(_estimate_line(plan))
            run = services.create_run(plan=plan, created_by=None, force=force)
        except InvalidRun as invalid:
            raise CommandError(_flags(invalid)) from None
        self.stdout.write(f"Queued finetune run {run.pk} ({run.method} on export {export.pk}).")
        if options["wait"]:
            self._wait(run.pk)

    def _wait(self, run_id: int) -> None:
        with progress_bar(self.stderr, unit=" steps", desc=f"run {run_id}") as progress:
            run = FinetuneRun.objects.get(pk=run_id)
            while not run.is_finished:
                if progress and run.total_steps:
                    progress(run.step, run.total_steps)
                time.sleep(POLL_SECONDS)
                run = FinetuneRun.objects.get(pk=run_id)
            if progress and run.total_steps:
                progress(run.step, run.total_steps)
        if run.status != FinetuneRun.Status.SUCCEEDED:
            raise CommandError(f"run {run_id} {run.status}: {run.error}")
        self.stdout.write(f"Run {run_id} succeeded: adapter in {run.adapter_path}")


def _estimate_line(plan: services.Plan) -> str:
    device = plan.device
    where = f" of {gib(device.memory)} on {device.name}" if device else " (target device unknown)"
    return f"Memory estimate: {gib(plan.estimate.total)}{where}."


def _flags(invalid: InvalidRun) -> str:
    """Errors named as the command's flags, e.g. --base-model: ..."""
    return "; ".join(
        f"--{name.replace('_', '-')}: {reason}" if name != "memory" else reason
        for name, reason in invalid.errors.items()
    )
