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
    # Quality control (docs/review.md): which finished items a reviewer looks at, and gold.
    review_min_agreement = models.FloatField(
        default=0.6,
        help_text="Pairwise: items whose most common answer has a smaller share go to review.",
    )
    review_max_rating = models.PositiveSmallIntegerField(
        default=2, help_text="SFT: a response rated at or below this goes to review (0: none)."
    )
    review_sample_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Percent of the other finished items sampled for review."
    )
    quality_seed = models.PositiveIntegerField(
        default=0, help_text="Seeds the review sample, so the same items are sampled."
    )
    gold_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Percent of claims that serve a gold item, when one is left."
    )
    gold_min_answers = models.PositiveSmallIntegerField(
        default=5, help_text="Gold answers needed before accuracy can pause an annotator."
    )
    gold_min_accuracy = models.FloatField(
        default=0.7, help_text="Annotators below this gold accuracy are paused."
    )
    # Review triage has looked at every item annotated up to this annotation id (0: none yet);
    # the periodic triage starts after it (labeling.services.reviews.triage_recent).
    review_triaged_through = models.PositiveBigIntegerField(default=0, editable=False)
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
            models.CheckConstraint(
                condition=Q(review_min_agreement__gte=0, review_min_agreement__lte=1)
                & Q(gold_min_accuracy__gte=0, gold_min_accuracy__lte=1)
                & Q(review_sample_percent__lte=100, gold_percent__lte=100),
                name="project_quality_ranges",
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
    # Set when gold accuracy fell below the project's threshold: claims are refused until an
    # admin resumes; gold answers before `gold_counted_since` no longer count after a resume.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    gold_counted_since = models.DateTimeField(null=True, blank=True)
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
        # A honeypot with a GoldLabel: served by the gold draw of a claim, never exported.
        GOLD = "gold"

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
    # A gold item's lease: it took no slot, and its submit is graded against the GoldLabel.
    gold = models.BooleanField(default=False)
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


class GoldLabel(models.Model):
    """The expected answer of a gold item: a pairwise choice, or an SFT rating range and flags."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_labels")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold_label")
    choice = models.CharField(max_length=16, choices=Annotation.Choice.choices, blank=True)
    min_rating = models.PositiveSmallIntegerField(null=True, blank=True)
    max_rating = models.PositiveSmallIntegerField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True, help_text="Flags a correct answer sets.")
    explanation = models.TextField(blank=True, help_text="Markdown: the guideline excerpt.")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(min_rating__isnull=True)
                | Q(max_rating__isnull=True)
                | Q(min_rating__lte=models.F("max_rating")),
                name="gold_rating_range",
            ),
            models.CheckConstraint(
                condition=Q(choice__in=["", "a", "b", "tie", "both_bad"]), name="gold_choice_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"gold label of {self.item_id}"


class ReviewTask(models.Model):
    """An item's place in the review queue, and the reviewer's lease on it.

    Every finished item is triaged once (one row per item): `not_needed` when no rule picked
    it, else `open` until a reviewer leases it. A lease that lapsed is claimable again; the
    submit's compare-and-set on (reviewer, leased) tells a lapsed reviewer their lease is gone.
    """

    class Status(models.TextChoices):
        NOT_NEEDED = "not_needed"
        OPEN = "open"
        LEASED = "leased"
        DONE = "done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_tasks")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="review_task")
    reasons = models.JSONField(default=list, blank=True, help_text="Rules that picked it.")
    status = models.CharField(max_length=16, choices=Status.choices)
    reviewer = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_tasks"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "reviewer"],
                condition=Q(status="leased"),
                name="review_one_lease_per_reviewer",
            ),
            models.CheckConstraint(
                condition=~Q(status="leased") | Q(reviewer__isnull=False, expires_at__isnull=False),
                name="review_lease_has_holder",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=Q(status__in=["open", "leased"]),
                name="review_task_claimable_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"review task {self.pk} ({self.status})"


class Review(models.Model):
    """A reviewer's decision on an item. It never changes the annotations it judges."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accept"
        REJECT = "reject", "Reject"
        ADJUDICATE = "adjudicate", "Adjudicate"

    task = models.OneToOneField(ReviewTask, on_delete=models.CASCADE, related_name="review")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="reviews")
    client_id = models.UUIDField(default=uuid.uuid4, help_text="Makes a repeated submit a no-op.")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    # The adjudicated label: pairwise in response terms (a = position 0), SFT a corrected text.
    choice = models.CharField(max_length=16, choices=Annotation.Choice.choices, blank=True)
    response_text = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["reviewer", "client_id"], name="review_client_id"),
            models.CheckConstraint(
                condition=Q(decision__in=["accept", "reject", "adjudicate"]),
                name="review_decision_valid",
            ),
            # An adjudication carries a label; accepting or rejecting carries none.
            models.CheckConstraint(
                condition=(Q(decision="adjudicate") & ~Q(choice="", response_text=""))
                | (~Q(decision="adjudicate") & Q(choice="", response_text="")),
                name="review_label_iff_adjudicated",
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.item_id}: {self.decision}"


class AnnotationVerdict(models.Model):
    """What a review meant for one annotation: accepted (stands) or rejected (left out)."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="verdicts")
    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="verdict")
    accepted = models.BooleanField()

    def __str__(self) -> str:
        return f"verdict on {self.annotation_id}: {self.accepted}"


class GuidelineNote(models.Model):
    """A reviewer's "guideline unclear" note on an item, for the guideline's next version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guideline_notes")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="guideline_notes")
    guideline = models.ForeignKey(
        GuidelineVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="notes"
    )
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=~Q(text=""), name="guideline_note_not_empty"),
        ]

    def __str__(self) -> str:
        return f"note on {self.item_id}"
