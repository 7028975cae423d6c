"""Agreement statistics: stored reports per project, and the per-project run guard.

A report is derived data: recomputing it from the annotations gives the same numbers, so rows
are only ever added (the newest is the one shown) and old ones pruned.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

__all__ = ["AgreementReport", "AgreementState"]


class AgreementReport(models.Model):
    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="agreement_reports"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    annotations = models.PositiveIntegerField(help_text="Annotations the report was made from.")
    last_annotation_id = models.BigIntegerField(
        default=0, help_text="The newest annotation the report saw (the beat's high-water mark)."
    )
    duration_ms = models.PositiveIntegerField(default=0)
    data = models.JSONField(help_text="The statistics; docs/curation.md lists the fields.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["project", "-created_at"], name="agreement_report_latest")]

    def __str__(self) -> str:
        return f"agreement report {self.pk} of project {self.project_id}"


class AgreementState(models.Model):
    """One row per project: the guard that keeps recomputations one at a time and debounced.

    `running_since` is set by a conditional UPDATE, so of two workers only the one whose
    UPDATE matched the row runs; `started_at` spaces runs at least a minute apart.
    """

    project = models.OneToOneField(
        "labeling.Project", on_delete=models.CASCADE, related_name="agreement_state"
    )
    running_since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_annotation_id = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(last_annotation_id__gte=0), name="agreement_state_mark_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"agreement state of project {self.project_id}"
