"""Writes of the finetune app: launch, cancel, claim, reap, progress, finish.

Every status change is a compare-and-set (a conditional UPDATE on the status), so a redelivered
task message, a cancel racing the worker's claim, or the stale-run reaper racing a late
heartbeat each change a run at most once (STYLE.md section 4). The worker's side of a run, the
loop around the trainer, is finetune.runner.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exports.models import Export
from finetune import options, paths, sources
from finetune.devices import Device, target_device
from finetune.errors import InvalidRun, RunFinished
from finetune.estimate import Architecture, Estimate, estimate, fewest_checkpointed, gib
from finetune.models import FinetuneRun
from finetune.training.config import LoraSettings, TrainSettings
from labeling.models import Project

logger = logging.getLogger(__name__)

Status = FinetuneRun.Status
STALE_MESSAGE = (
    "The worker stopped sending heartbeats (killed, out of memory, or its machine went away)."
)


def stale_after() -> timedelta:
    """How long a running run may go without a heartbeat before it counts as dead."""
    return timedelta(seconds=getattr(settings, "FINETUNE_STALE_SECONDS", 120))


@dataclass(frozen=True)
class Plan:
    """A checked launch request and its memory estimate, before anything is written."""

    export: Export
    method: str
    base_model: Path
    lora: LoraSettings
    train: TrainSettings
    estimate: Estimate
    device: Device | None
    # When it does not fit: the fewest layers to recompute for it to fit (None if none do),
    # out of the model's layers.
    fewest_checkpointed: int | None = None
    layers: int = 0

    @property
    def fits(self) -> bool | None:
        return None if self.device is None else self.estimate.fits(self.device.memory)

    @property
    def refusal(self) -> str | None:
        if self.fits is not False or self.device is None:
            return None
        fewest, layers = self.fewest_checkpointed, self.layers
        if fewest is None:
            remedy = "lower batch_size or max_length"
        else:  # each further layer recomputed costs less (all of them: one layer input more)
            remedy = (
                f"use gradient_checkpointing with checkpoint_layers {fewest} to {layers}"
                " (or empty: all)"
            )
        return (
            f"estimated {gib(self.estimate.total)} does not fit in the {gib(self.device.memory)}"
            f" of {self.device.name}: {remedy}, or force the launch"
        )


def plan_run(
    *, project: Project, export_id: Any, method: str, base_model: str, values: dict[str, Any]
) -> Plan:
    """Check a launch request and estimate its memory. Writes nothing; InvalidRun if bad."""
    errors: dict[str, str] = {}
    export = _export(project, export_id, errors)
    if method not in sources.FORMAT_FOR_METHOD:
        errors["method"] = f"must be one of {', '.join(sources.FORMAT_FOR_METHOD)}"
    folder = _collect(errors, paths.resolve_base_model, base_model)
    settings_ = _collect(errors, options.parse, values, method=method)
    if export is not None and "method" not in errors:
        _collect(errors, sources.check_export, export, method)
    if errors or export is None or folder is None or settings_ is None:
        raise InvalidRun(errors)
    lora, train = settings_
    config = read_config(folder)
    usage = estimate(config, lora, train, method=method)
    device = target_device()
    fewest = None
    if device is not None and not usage.fits(device.memory):
        fewest = fewest_checkpointed(config, lora, train, method=method, memory=device.memory)
    layers = Architecture.from_config(config).layers
    return Plan(export, method, folder, lora, train, usage, device, fewest, layers)


def read_config(folder: Path) -> dict[str, Any]:
    """The model's config.json as a dict; InvalidRun when it is not a JSON object."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRun({"base_model": f"config.json cannot be read: {error}"}) from None
    if not isinstance(config, dict):
        raise InvalidRun({"base_model": "config.json must hold a JSON object"})
    return config


def _export(project: Project, export_id: Any, errors: dict[str, str]) -> Export | None:
    try:
        number = int(export_id)
    except (TypeError, ValueError):
        errors["export"] = "must be an export id"
        return None
    export = project.exports.filter(pk=number).first()
    if export is None:
        errors["export"] = f"no export {number} in this project"
    return export


def _collect(errors: dict[str, str], check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one check, adding its InvalidRun errors to `errors`, so all are reported at once."""
    try:
        return check(*args, **kwargs)
    except InvalidRun as invalid:
        errors.update(invalid.errors)
        return None


LAUNCH_KEYS = ("export", "method", "base_model", "force")


def plan_request(*, project: Project, data: dict[str, Any]) -> tuple[Plan, bool]:
    """A launch request as the API and the form send it: the plan, and whether to force it."""
    values = dict(data)
    launch = {key: values.pop(key, None) for key in LAUNCH_KEYS}
    try:
        force = options.boolean(launch["force"] or False)
    except ValueError as error:
        raise InvalidRun({"force": str(error)}) from None
    plan = plan_run(
        project=project,
        export_id=launch["export"],
        method=str(launch["method"] or ""),
        base_model=str(launch["base_model"] or ""),
        values=values,
    )
    return plan, force


@transaction.atomic
def create_run(*, plan: Plan, created_by: Any, force: bool = False) -> FinetuneRun:
    """Record a planned run and queue it for the gpu worker. Each call makes a new run."""
    from finetune import tasks  # tasks import this module

    if plan.refusal and not force:
        raise InvalidRun({"memory": plan.refusal})
    lora, train = options.as_dicts(plan.lora, plan.train)
    run = FinetuneRun.objects.create(
        project_id=plan.export.project_id,
        export=plan.export,
        method=plan.method,
        base_model=str(plan.base_model),
        lora=lora,
        hyperparameters=train,
        seed=plan.train.seed,
        estimate=plan.estimate.as_dict(),
        forced=bool(plan.refusal),
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    # On commit: the worker must never look for a row that a rollback would take back.
    tasks.run_finetune.delay_on_commit(run.pk)
    logger.info("finetune.queued", extra={"run_id": run.pk, "method": run.method})
    return run


def cancel(*, run: FinetuneRun) -> FinetuneRun:
    """Cancel a run: a queued one at once, a running one at the trainer's next step.

    Idempotent while the run is unfinished; RunFinished once it has finished.
    """
    now = timezone.now()
    unstarted = FinetuneRun.objects.filter(pk=run.pk, status=Status.QUEUED)
    if not unstarted.update(status=Status.CANCELLED, cancel_requested=True, finished_at=now):
        running = FinetuneRun.objects.filter(pk=run.pk, status=Status.RUNNING)
        if not running.update(cancel_requested=True):
            raise RunFinished(f"run {run.pk} has already finished")
    logger.info("finetune.cancel_requested", extra={"run_id": run.pk})
    return FinetuneRun.objects.get(pk=run.pk)


def claim(*, run_id: int, worker: str, device: Device) -> FinetuneRun | None:
    """queued -> running, once. None when the run is not queued (a redelivery, a cancel)."""
    fail_stale_runs()
    now = timezone.now()
    claimed = FinetuneRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker[:255],
        device=device.name[:200],
        device_memory=device.memory,
    )
    if not claimed:
        logger.info("finetune.not_queued", extra={"run_id": run_id})
        return None
    return FinetuneRun.objects.select_related("export").get(pk=run_id)


def fail_stale_runs(*, now: datetime | None = None) -> int:
    """Mark failed every running run whose heartbeat stopped. Each is failed at most once."""
    now = now or timezone.now()
    stale = FinetuneRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=now - stale_after())
    # One conditional UPDATE: a heartbeat that lands first keeps its run out of it.
    failed = stale.update(status=Status.FAILED, finished_at=now, error=STALE_MESSAGE)
    if failed:
        logger.warning("finetune.stale_runs_failed", extra={"count": failed})
    return failed


def heartbeat(*, run_id: int) -> bool:
    """Say the worker is alive. False when the run is no longer running (reaped, finished)."""
    running = FinetuneRun.objects.filter(pk=run_id, status=Status.RUNNING)
    return bool(running.update(heartbeat_at=timezone.now()))


def record_progress(*, run_id: int, fields: dict[str, Any]) -> tuple[bool, bool]:
    """Store progress fields of a running run; (still running, cancel requested)."""
    running = FinetuneRun.objects.filter(pk=run_id, status=Status.RUNNING)
    if not running.update(heartbeat_at=timezone.now(), **fields):
        return False, False
    return True, bool(running.values_list("cancel_requested", flat=True).first())


def finish(*, run_id: int, status: str, **fields: Any) -> bool:
    """running -> a final status, once; False when something else finished it first."""
    if status == Status.SUCCEEDED:
        fields["progress"] = 1.0
    finished = FinetuneRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    logger.info("finetune.finished", extra={"run_id": run_id, "status": status})
    return bool(finished)
