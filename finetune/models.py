"""A FinetuneRun: one LoRA training of a base model on one finished export.

The status machine is queued -> running -> succeeded | failed | cancelled, and queued ->
cancelled | failed. Each step is a conditional UPDATE in finetune.services (a compare-and-set on
the status), and the constraints below keep the timestamps and outputs consistent with the
status whatever writes the row.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from exports.models import Export
from labeling.models import Project


class Method(models.TextChoices):
    SFT = "sft", "SFT"
    DPO = "dpo", "DPO"


class FinetuneRunQuerySet(models.QuerySet["FinetuneRun"]):
    def for_project(self, project: Project) -> FinetuneRunQuerySet:
        return self.filter(project=project)

    def unfinished(self) -> FinetuneRunQuerySet:
        return self.filter(status__in=FinetuneRun.UNFINISHED)


class FinetuneRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    UNFINISHED = (Status.QUEUED, Status.RUNNING)

    # The project is the export's, stored again so that every lookup is scoped in one join.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="finetune_runs")
    export = models.ForeignKey(Export, on_delete=models.PROTECT, related_name="finetune_runs")
    method = models.CharField(max_length=8, choices=Method.choices)
    base_model = models.CharField(
        max_length=1024, help_text="The model folder, resolved inside FINETUNE_MODELS_DIR."
    )
    lora = models.JSONField(help_text="rank, alpha, dropout, target_modules.")
    hyperparameters = models.JSONField(help_text="The trainer's settings, seed included.")
    seed = models.PositiveIntegerField(default=0)
    estimate = models.JSONField(default=dict, blank=True, help_text="Memory estimate at launch.")
    forced = models.BooleanField(default=False, help_text="Launched despite the estimate.")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(
        default=list, blank=True, help_text="Step metrics, at most MAX_POINTS of them."
    )
    final_metrics = models.JSONField(default=dict, blank=True)
    logs = models.TextField(blank=True, help_text="The last lines of the run's log.")
    error = models.TextField(blank=True)
    adapter_path = models.CharField(max_length=1024, blank=True)
    report_path = models.CharField(max_length=1024, blank=True)
    device = models.CharField(max_length=200, blank=True)
    device_memory = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    worker = models.CharField(max_length=255, blank=True, help_text="The claiming worker.")
    cancel_requested = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[FinetuneRunQuerySet] = FinetuneRunQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="finetune_project_recent"),
            models.Index(fields=["status", "heartbeat_at"], name="finetune_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="finetune_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(method__in=["sft", "dpo"]), name="finetune_method_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=1), name="finetune_progress_range"
            ),
            # Finished exactly when in a final state: no run is left both done and undated.
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running"], finished_at__isnull=True)
                | (~Q(status__in=["queued", "running"]) & Q(finished_at__isnull=False)),
                name="finetune_finished_at_iff_done",
            ),
            # A queued run never started; a running or succeeded one did, and has a heartbeat
            # (the stale-run reaper's clock). Failed and cancelled runs may have started or not.
            models.CheckConstraint(
                condition=Q(status="queued", started_at__isnull=True)
                | Q(
                    status__in=["running", "succeeded"],
                    started_at__isnull=False,
                    heartbeat_at__isnull=False,
                )
                | Q(status__in=["failed", "cancelled"]),
                name="finetune_started_at_by_status",
            ),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | (~Q(adapter_path="") & Q(progress=1)),
                name="finetune_succeeded_has_adapter",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} finetune {self.pk} of export {self.export_id}"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.SUCCEEDED else int(100 * self.progress)

    @property
    def can_cancel(self) -> bool:
        return not self.is_finished and not self.cancel_requested

    def setting(self, name: str) -> Any:
        return self.hyperparameters.get(name)
