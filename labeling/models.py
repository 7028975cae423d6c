"""The core domain: projects, people, guidelines, items, leases and annotations.

Invariants live in the constraints below, not only in Python (DESIGN.md, "The domain"):
an annotator holds at most one live lease per project and never gets an item twice, an item's
open slots never go negative, and an assignment carries at most one annotation.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.querysets import (
    AssignmentQuerySet,
    ItemQuerySet,
    MembershipQuerySet,
    ProjectQuerySet,
)

User = settings.AUTH_USER_MODEL


class Project(models.Model):
    class Kind(models.TextChoices):
        SFT = "sft", "SFT responses"
        PAIRWISE = "pairwise", "Pairwise preferences"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Annotations wanted per item.")
    lease_seconds = models.PositiveIntegerField(
        default=600, help_text="How long a claimed item stays reserved without a heartbeat."
    )
    rating_scale = models.PositiveSmallIntegerField(
        default=5, help_text="SFT: ratings run from 1 to this number."
    )
    flags = models.JSONField(default=list, blank=True, help_text="Flag names, e.g. unsafe.")
    criteria = models.JSONField(
        default=list, blank=True, help_text="Pairwise: criteria judged one by one."
    )
    randomize_order = models.BooleanField(
        default=True, help_text="Pairwise: show the two responses in random order per lease."
    )
    current_guideline = models.ForeignKey(
        "GuidelineVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[ProjectQuerySet] = ProjectQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=30), name="project_lease_min"),
            models.CheckConstraint(
                condition=Q(rating_scale__gte=2, rating_scale__lte=10),
                name="project_rating_scale_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def lease_duration(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def is_pairwise(self) -> bool:
        return self.kind == self.Kind.PAIRWISE


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"


class Membership(models.Model):
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    acknowledged_guideline = models.ForeignKey(
        "GuidelineVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[MembershipQuerySet] = MembershipQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_review(self) -> bool:
        return self.role in (Role.ADMIN, Role.REVIEWER)

    @property
    def needs_acknowledgement(self) -> bool:
        current = self.project.current_guideline_id
        return current is not None and self.acknowledged_guideline_id != current


class GuidelineVersion(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="guidelines", db_index=False
    )
    number = models.PositiveIntegerField()
    body = models.TextField(help_text="Markdown.")
    changelog = models.CharField(max_length=300)
    author = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="guideline_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project} guidelines v{self.number}"


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=1024, help_text="The uploaded file, under UPLOAD_DIR.")
    skip_bad_lines = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total_lines = models.PositiveIntegerField(default=0)
    processed_lines = models.PositiveIntegerField(default=0)
    created_items = models.PositiveIntegerField(default=0)
    duplicate_items = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text='[{"line": n, "reason": s}]')
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.filename} into {self.project_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        return int(100 * self.processed_lines / self.total_lines) if self.total_lines else 0


class Item(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        DUPLICATE = "duplicate"
        FILTERED = "filtered"

    # db_index=False where a composite unique index already leads with the column: one index
    # fewer to maintain on every insert (imports write hundreds of thousands of rows).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    external_id = models.CharField(max_length=200, blank=True, help_text="The import's `id`.")
    messages = models.JSONField(help_text='The conversation: [{"role", "content"}, ...].')
    prompt = models.TextField(help_text="The last user turn, for lists and search.")
    draft_response = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The quota lives on the item row itself so that a claim that locks the row re-checks it
    # after a concurrent commit (STYLE.md section 3); a count over assignments can over-assign.
    open_slots = models.PositiveSmallIntegerField()
    priority = models.SmallIntegerField(default=0)
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[ItemQuerySet] = ItemQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="item_hash_unique"),
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~Q(external_id=""),
                name="item_external_id_unique",
            ),
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="item_open_slots_gte_0"),
        ]
        indexes = [
            models.Index(
                fields=["project", "-priority", "id"],
                condition=Q(open_slots__gt=0, status="active"),
                name="item_claimable_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"item {self.pk}"


class Response(models.Model):
    """A candidate response to an item, in the position it was imported (A = 0, B = 1)."""

    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    model = models.CharField(max_length=200, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["item", "position"]
        constraints = [
            models.UniqueConstraint(fields=["item", "position"], name="response_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}/{self.position}"


class Assignment(models.Model):
    """A lease on one item for one annotator."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    annotator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Pairwise: True when response B is shown on the left. Chosen per lease, kept server-side.
    swapped = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=200, blank=True)

    objects: ClassVar[AssignmentQuerySet] = AssignmentQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_once_per_item"),
            models.UniqueConstraint(
                fields=["project", "annotator"],
                condition=Q(status="active"),
                name="assignment_one_active_per_project",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="active"), name="assignment_live_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} on {self.item_id} for {self.annotator_id}"


class Annotation(models.Model):
    class Choice(models.TextChoices):
        A = "a", "Response A"
        B = "b", "Response B"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, related_name="annotation"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    annotator = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    client_id = models.UUIDField(default=uuid.uuid4, help_text="Makes a repeated submit a no-op.")
    guideline = models.ForeignKey(
        GuidelineVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # SFT
    response_text = models.TextField(blank=True)
    draft_text = models.TextField(blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    # Pairwise, in terms of the stored responses (A = position 0), never screen sides.
    choice = models.CharField(max_length=16, choices=Choice.choices, blank=True)
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    criteria = models.JSONField(default=dict, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_id"], name="annotation_client_id"),
            models.UniqueConstraint(fields=["item", "annotator"], name="annotation_once_per_item"),
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | Q(strength__gte=1, strength__lte=3),
                name="annotation_strength_range",
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1), name="annotation_rating_min"
            ),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} on {self.item_id}"
