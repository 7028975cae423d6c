"""Deduplication: per-project settings, runs (with their batches), stored signatures and band
keys, verified pairs, and the duplicate groups that admins review.

Signatures, band keys and verified pairs are kept between runs so that a run after an import
signs only the new items and compares them with the stored band keys (incremental); they carry
the fingerprint of the parameters they were made with, and a change of parameters makes a run
start over.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from labeling.models import Item, Project

__all__ = [
    "DedupBatch",
    "DedupConfig",
    "DedupRun",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicatePair",
    "ItemSignature",
]


class DedupConfig(models.Model):
    """A project's near-duplicate parameters; a project without a row uses the defaults."""

    class Mode(models.TextChoices):
        WORD = "word", "Word n-grams"
        CHAR = "char", "Character n-grams (short prompts, under ~40 words)"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="dedup_config")
    threshold = models.FloatField(default=0.8, help_text="Jaccard similarity, 0.5 to 1.")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.WORD)
    ngram = models.PositiveSmallIntegerField(default=3, help_text="Words or characters a shingle.")
    # Optional embedding dedup (curation.dedup.semantic, the `semantic` extra). 0.9 groups
    # paraphrases (0.94 for two wordings of one question) and keeps apart prompts that only
    # share a topic (docs/curation.md, "Semantic dedup").
    semantic = models.BooleanField(
        default=False, help_text="Also group prompts with similar sentence embeddings."
    )
    semantic_threshold = models.FloatField(
        default=0.9, help_text="Cosine similarity of the prompts' embeddings, 0.5 to 1."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0.5, threshold__lte=1), name="dedup_threshold_range"
            ),
            models.CheckConstraint(
                condition=Q(ngram__gte=1, ngram__lte=12), name="dedup_ngram_range"
            ),
            models.CheckConstraint(
                condition=Q(semantic_threshold__gte=0.5, semantic_threshold__lte=1),
                name="dedup_semantic_threshold_range",
            ),
        ]

    def __str__(self) -> str:
        return f"dedup settings of {self.project_id}"

    def clean(self) -> None:
        from curation.dedup import semantic  # imports no torch; semantic imports models

        if self.semantic and not semantic.available():
            raise ValidationError(semantic.INSTALL_HINT)


class DedupRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SIGNING = "signing"
        MERGING = "merging"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        BUTTON = "button"
        COMMAND = "command"
        IMPORT = "import"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dedup_runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    full = models.BooleanField(default=False, help_text="Sign every item again.")
    fingerprint = models.CharField(max_length=100, blank=True)
    threshold = models.FloatField(default=0.8)
    batch_size = models.PositiveIntegerField(default=20_000)
    # Another run was asked for while this one was live: start it when this one ends.
    rerun_requested = models.BooleanField(default=False)
    items_to_sign = models.PositiveIntegerField(default=0)
    items_signed = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    candidate_pairs = models.PositiveIntegerField(default=0)
    verified_pairs = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current step (the run's merge) was claimed: a stale claim may be taken over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    LIVE = (Status.QUEUED, Status.SIGNING, Status.MERGING)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One live run a project: a second request sets rerun_requested instead.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "signing", "merging"]),
                name="dedup_run_one_live_per_project",
            ),
            models.CheckConstraint(
                condition=Q(batches_done__lte=models.F("batches")), name="dedup_run_batches_le"
            ),
        ]

    def __str__(self) -> str:
        return f"dedup run {self.pk} of {self.project_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished:
            return 100
        if not self.items_to_sign:
            return 0
        return int(95 * self.items_signed / self.items_to_sign)


class DedupBatch(models.Model):
    """A range of item ids that one task signs; the unit a killed worker's successor redoes."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    run = models.ForeignKey(DedupRun, on_delete=models.CASCADE, related_name="batch_rows")
    number = models.PositiveIntegerField()
    first_item = models.BigIntegerField()
    last_item = models.BigIntegerField()
    items = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="dedup_batch_number_unique"),
        ]

    def __str__(self) -> str:
        return f"batch {self.number} of run {self.run_id}"


class ItemSignature(models.Model):
    """An item's MinHash signature and band keys under one set of parameters."""

    item = models.OneToOneField(
        Item, primary_key=True, on_delete=models.CASCADE, related_name="dedup_signature"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(DedupRun, null=True, on_delete=models.SET_NULL, related_name="+")
    fingerprint = models.CharField(max_length=100)
    signature = models.BinaryField(help_text="128 little-endian uint32 MinHash values.")
    band_keys = models.BinaryField(
        help_text="Little-endian uint64 LSH band keys, one a band (bands = 128 // rows a band)."
    )
    prompt_hash = models.BigIntegerField(help_text="The normalized prompt text, for exact groups.")
    response_hashes = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "fingerprint"], name="dedup_sig_project_idx")]

    def __str__(self) -> str:
        return f"signature of {self.item_id}"


class DuplicatePair(models.Model):
    """Two items verified to be near duplicates (exact Jaccard at least the run's threshold)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    first = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    similarity = models.FloatField()
    fingerprint = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["second", "first"], name="dedup_pair_unique"),
            models.CheckConstraint(
                condition=Q(first__lt=models.F("second")), name="dedup_pair_ordered"
            ),
        ]
        indexes = [models.Index(fields=["project", "fingerprint"], name="dedup_pair_project_idx")]

    def __str__(self) -> str:
        return f"{self.first_id} ~ {self.second_id}"


class DuplicateGroup(models.Model):
    class Kind(models.TextChoices):
        NEAR = "near", "Near-duplicate prompts"
        EXACT_PROMPT = "exact_prompt", "Exact duplicate prompts"
        EXACT_RESPONSE = "exact_response", "Exact duplicate responses"
        SEMANTIC = "semantic", "Semantically similar prompts"

    run = models.ForeignKey(DedupRun, on_delete=models.CASCADE, related_name="groups")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    number = models.PositiveIntegerField(help_text="Position in the run's report.")
    representative = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    size = models.PositiveIntegerField()
    min_similarity = models.FloatField()

    class Meta:
        ordering = ["run", "kind", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "kind", "number"], name="dedup_group_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} group {self.number} of run {self.run_id}"


class DuplicateMember(models.Model):
    group = models.ForeignKey(DuplicateGroup, on_delete=models.CASCADE, related_name="members")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    similarity = models.FloatField(help_text="Exact Jaccard with the representative.")

    class Meta:
        ordering = ["group", "item"]
        constraints = [
            models.UniqueConstraint(fields=["group", "item"], name="dedup_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} in {self.group_id}"
