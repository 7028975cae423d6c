"""An Export is the record of one export run: what was asked, what was written, and why.

It is immutable once finished, so that a finetune naming an export names one exact batch of
rows (the files' SHA-256 are in `files`). The service finishes a run with a conditional UPDATE
from RUNNING, and `save()` refuses to change a finished row.

A job (the Export page, the API) starts QUEUED with the options it was asked for in `options`;
a worker claims it (QUEUED -> RUNNING, `started_at`), stores its progress in
`processed_annotations` of `total_annotations`, and finishes it like a command's run.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from exports.options import FORMATS
from labeling.models import Project

UNFINISHED = ("queued", "running")


class ExportIsFinal(Exception):
    """A finished export was about to be changed."""


class Export(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16, choices=[(name, name) for name in FORMATS])
    style = models.CharField(max_length=16, blank=True, help_text="Empty for raw exports.")
    policy = models.JSONField(
        default=dict, help_text="The resolved policy, filters and split, defaults filled in."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    options = models.JSONField(
        default=dict, blank=True, help_text="A job's options as given; resolved when it runs."
    )
    total_annotations = models.PositiveBigIntegerField(default=0)
    processed_annotations = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text='Rows per split: {"train": n}.')
    dropped = models.JSONField(
        default=dict, blank=True, help_text='{"annotations": {rule: n}, "items": {rule: n}}.'
    )
    files = models.JSONField(
        default=dict, blank=True, help_text='{file name: {"sha256", "rows", "bytes"}}.'
    )
    path = models.CharField(max_length=1024, help_text='The output as given; "-" for stdout.')
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["project", "-created_at"], name="export_project_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]),
                name="export_status_valid",
            ),
            # Finished exactly when no longer running: a finished_at is never left behind.
            models.CheckConstraint(
                condition=Q(status__in=UNFINISHED, finished_at__isnull=True)
                | (~Q(status__in=UNFINISHED) & Q(finished_at__isnull=False)),
                name="export_finished_at_iff_done",
            ),
            models.CheckConstraint(
                condition=Q(processed_annotations__lte=F("total_annotations")),
                name="export_progress_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.format} export {self.pk} of {self.project_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and self._stored_as_finished():
            raise ExportIsFinal(f"export {self.pk} is finished and cannot change")
        super().save(*args, **kwargs)

    def _stored_as_finished(self) -> bool:
        return Export.objects.filter(pk=self.pk).exclude(status__in=UNFINISHED).exists()

    @property
    def is_finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.total_annotations:
            return 0
        return int(100 * self.processed_annotations / self.total_annotations)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())
