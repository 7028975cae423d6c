"""What the API reads and writes. Serializers only shape data: the services validate and write.

Pairwise leases are blind: an annotator sees the two responses as `left` and `right` in the
order chosen for that lease, never which one is A or B, nor the models that wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import (
    Annotation,
    AnnotationVerdict,
    GoldLabel,
    GuidelineVersion,
    ImportJob,
    Item,
    Project,
    Response,
    Review,
    ReviewTask,
)

SIDES = ("left", "right")


@extend_schema_field(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            "required": ["role", "content"],
        },
    }
)
class MessagesField(serializers.JSONField):
    """A conversation, `[{"role", "content"}, ...]`, passed through as stored."""


class NameListField(serializers.ListField):
    """The project's flag or criterion names."""

    child = serializers.CharField()


class ProjectSerializer(serializers.ModelSerializer[Project]):
    # `role` and `acknowledged_guideline` are annotated from the caller's membership row.
    role = serializers.CharField(read_only=True, help_text="Your role: admin, reviewer, annotator.")
    current_guideline = serializers.IntegerField(
        source="current_guideline.number", read_only=True, allow_null=True
    )
    acknowledged_guideline = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The guideline version you last acknowledged."
    )
    flags = NameListField(read_only=True)
    criteria = NameListField(read_only=True)

    class Meta:
        model = Project
        fields = [
            "slug", "name", "kind", "description", "overlap", "lease_seconds", "rating_scale",
            "flags", "criteria", "randomize_order", "current_guideline",
            "acknowledged_guideline", "role", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class GuidelineSerializer(serializers.ModelSerializer[GuidelineVersion]):
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)

    class Meta:
        model = GuidelineVersion
        fields = ["number", "changelog", "author", "created_at", "body"]
        read_only_fields = fields


class PublishGuidelineSerializer(serializers.Serializer[dict[str, Any]]):
    body = serializers.CharField(max_length=200_000, trim_whitespace=False, help_text="Markdown.")
    changelog = serializers.CharField(max_length=300, help_text="One line: what changed and why.")


class AcknowledgementSerializer(serializers.Serializer[dict[str, Any]]):
    acknowledged_guideline = serializers.IntegerField()


class StoredResponseSerializer(serializers.ModelSerializer[Response]):
    """A candidate response as imported (position 0 is A): for admins and reviewers only."""

    class Meta:
        model = Response
        fields = ["position", "model", "text"]
        read_only_fields = fields


class ItemSerializer(serializers.ModelSerializer[Item]):
    messages = MessagesField(read_only=True)
    responses = StoredResponseSerializer(many=True, read_only=True)

    class Meta:
        model = Item
        fields = [
            "id", "external_id", "prompt", "messages", "draft_response", "metadata", "status",
            "open_slots", "priority", "created_at", "responses",
        ]  # fmt: skip
        read_only_fields = fields


class ItemFilterSerializer(serializers.Serializer[dict[str, Any]]):
    """Query parameters of the item list."""

    status = serializers.ChoiceField(choices=Item.Status.choices, required=False)
    q = serializers.CharField(required=False, help_text="A substring of the prompt (any case).")
    external_id = serializers.CharField(required=False, help_text="The import's `id`, exactly.")

    def filter(self, items: QuerySet[Item]) -> QuerySet[Item]:
        """The items matching the validated parameters."""
        params = self.validated_data
        if "status" in params:
            items = items.filter(status=params["status"])
        if "q" in params:
            items = items.filter(prompt__icontains=params["q"])
        if "external_id" in params:
            items = items.filter(external_id=params["external_id"])
        return items


class ImportUploadSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(help_text="JSONL or CSV, either of them gzipped or not.")
    skip_bad_lines = serializers.BooleanField(
        default=False, help_text="Import the good lines and report the bad ones."
    )


class ImportErrorSerializer(serializers.Serializer[dict[str, Any]]):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportJobSerializer(serializers.ModelSerializer[ImportJob]):
    percent = serializers.IntegerField(read_only=True)
    # Shadows Serializer.errors for type checkers only: the metaclass moves fields off the class.
    errors = ImportErrorSerializer(many=True, read_only=True)  # type: ignore[assignment]

    class Meta:
        model = ImportJob
        fields = [
            "id", "filename", "status", "skip_bad_lines", "total_lines", "processed_lines",
            "percent", "created_items", "duplicate_items", "errors", "message", "created_at",
            "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


@dataclass(frozen=True)
class ShownResponse:
    side: str
    text: str


@dataclass(frozen=True)
class Lease:
    """A lease as its annotator sees it: pairwise responses already in this lease's order."""

    id: int
    expires_at: datetime
    item: Item
    responses: list[ShownResponse]


class ShownResponseSerializer(serializers.Serializer[ShownResponse]):
    side = serializers.ChoiceField(choices=SIDES)
    text = serializers.CharField()


class LeaseItemSerializer(serializers.Serializer[Lease]):
    """The leased item; built from the Lease because the shown order belongs to the lease."""

    id = serializers.IntegerField(source="item.pk")
    external_id = serializers.CharField(source="item.external_id")
    messages = MessagesField(source="item.messages")
    draft_response = serializers.CharField(
        source="item.draft_response", help_text="SFT: the imported draft to edit."
    )
    responses = ShownResponseSerializer(
        many=True, help_text="Pairwise: left then right, as shown. Empty for SFT."
    )


class LeaseSerializer(serializers.Serializer[Lease]):
    id = serializers.IntegerField(help_text="The assignment id, for heartbeat, submit and skip.")
    expires_at = serializers.DateTimeField()
    item = LeaseItemSerializer(source="*")


class NextLeaseSerializer(serializers.Serializer[dict[str, Any]]):
    next = LeaseSerializer(
        allow_null=True,
        help_text="The next lease; null when nothing is left for you or when new guidelines "
        "await acknowledgement (claim to find out which).",
    )


class HeartbeatSerializer(serializers.Serializer[dict[str, Any]]):
    expires_at = serializers.DateTimeField()


class SkipSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=200, help_text="Why, e.g. unclear or offensive.")


class SubmissionSerializer(serializers.Serializer[dict[str, Any]]):
    """Documents the submit body; the annotations service validates it against the project.

    Validation errors answer 400 `{"errors": {field: reason}}`, the service's own words.
    """

    client_id = serializers.UUIDField(help_text="Generated by the client once per submit.")
    time_spent_ms = serializers.IntegerField(required=False, min_value=0)
    resubmit = serializers.BooleanField(
        required=False, help_text="Take back a lapsed lease if its item is still open."
    )
    response = serializers.CharField(required=False, help_text="SFT, required: the final text.")
    draft = serializers.CharField(required=False, help_text="SFT: the draft it was edited from.")
    rating = serializers.IntegerField(
        required=False, help_text="SFT, required: 1 to the project's rating scale."
    )
    flags = NameListField(required=False, help_text="SFT: names from the project's flags.")
    notes = serializers.CharField(required=False)
    choice = serializers.ChoiceField(
        choices=[*SIDES, "tie", "both_bad"],
        required=False,
        help_text="Pairwise, required: in screen terms; stored as a, b, tie or both_bad.",
    )
    strength = serializers.IntegerField(
        required=False, min_value=1, max_value=3, help_text="Pairwise: with left or right."
    )
    rationale = serializers.CharField(required=False)
    criteria = serializers.DictField(
        child=serializers.ChoiceField(choices=[*SIDES, "tie"]),
        required=False,
        help_text="Pairwise: {criterion: left|right|tie}.",
    )


class AnnotationSerializer(serializers.ModelSerializer[Annotation]):
    """An annotation in stored terms: `choice` is a or b (the imported order), never a side."""

    annotator = serializers.CharField(source="annotator.username", read_only=True)
    guideline = serializers.IntegerField(
        source="guideline.number", read_only=True, allow_null=True, help_text="Version number."
    )
    flags = NameListField(read_only=True)
    criteria = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Annotation
        fields = [
            "id", "item", "annotator", "client_id", "guideline", "choice", "strength",
            "rationale", "criteria", "response_text", "rating", "flags", "notes",
            "time_spent_ms", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class SubmitResultSerializer(NextLeaseSerializer):
    """The stored annotation plus the next lease, so a client needs one round trip."""

    annotation = AnnotationSerializer()


# The hot path (claim, submit, skip) renders leases and annotations with the two functions
# below: a ModelSerializer builds its fields anew for every instance, which on a submit cost as
# much Python as two of its queries. They answer exactly what LeaseSerializer and
# AnnotationSerializer describe in the schema; tests/labeling/test_hot_path.py holds them equal.
_DATETIME = serializers.DateTimeField()


def lease_data(lease: Lease) -> dict[str, Any]:
    item = lease.item
    return {
        "id": lease.id,
        "expires_at": _DATETIME.to_representation(lease.expires_at),
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "messages": item.messages,
            "draft_response": item.draft_response,
            "responses": [{"side": shown.side, "text": shown.text} for shown in lease.responses],
        },
    }


def annotation_data(annotation: Annotation) -> dict[str, Any]:
    guideline = annotation.guideline
    return {
        "id": annotation.pk,
        "item": annotation.item_id,
        "annotator": annotation.annotator.username,
        "client_id": str(annotation.client_id),
        "guideline": None if guideline is None else guideline.number,
        "choice": annotation.choice,
        "strength": annotation.strength,
        "rationale": annotation.rationale,
        "criteria": {name: str(side) for name, side in annotation.criteria.items()},
        "response_text": annotation.response_text,
        "rating": annotation.rating,
        "flags": [str(flag) for flag in annotation.flags],
        "notes": annotation.notes,
        "time_spent_ms": annotation.time_spent_ms,
        "created_at": _DATETIME.to_representation(annotation.created_at),
    }


class DetailSerializer(serializers.Serializer[dict[str, Any]]):
    detail = serializers.CharField()


class LeaseLostSerializer(DetailSerializer):
    item_open = serializers.BooleanField(
        help_text="The item still has a free slot: resubmit to take the lease back."
    )


class GuidelineGateSerializer(DetailSerializer):
    guideline = GuidelineSerializer(help_text="Acknowledge this version, then claim again.")


class InvalidAnnotationSerializer(serializers.Serializer[dict[str, Any]]):
    errors = serializers.DictField(  # type: ignore[assignment]  # see ImportJobSerializer
        child=serializers.CharField(), help_text="field: reason"
    )


# Review, gold and feedback (docs/review.md) ---------------------------------------------------


class VerdictSerializer(serializers.ModelSerializer[AnnotationVerdict]):
    class Meta:
        model = AnnotationVerdict
        fields = ["annotation", "accepted"]
        read_only_fields = fields


class ReviewSerializer(serializers.ModelSerializer[Review]):
    """A decision in stored terms: `choice` is a or b (the imported order)."""

    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    verdicts = VerdictSerializer(many=True, read_only=True)

    class Meta:
        model = Review
        fields = [
            "id", "item", "reviewer", "client_id", "decision", "choice", "response_text",
            "comment", "created_at", "verdicts",
        ]  # fmt: skip
        read_only_fields = fields


class ReviewLeaseSerializer(serializers.Serializer[ReviewTask]):
    """A leased review: the item with its stored responses (A = position 0) and every vote."""

    id = serializers.IntegerField(help_text="The review task id, for heartbeat and submit.")
    expires_at = serializers.DateTimeField()
    reasons = NameListField(help_text="disagreement, flagged, low_rating, sample.")
    item = ItemSerializer()
    annotations = AnnotationSerializer(many=True, source="item.annotations.all")


class ReviewSubmissionSerializer(serializers.Serializer[dict[str, Any]]):
    """Documents the review body; the reviews service validates it (400 `{"errors"}`)."""

    client_id = serializers.UUIDField(help_text="Generated by the client once per submit.")
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    choice = serializers.ChoiceField(
        choices=Annotation.Choice.choices, required=False, help_text="Pairwise adjudication."
    )
    response = serializers.CharField(required=False, help_text="SFT adjudication: corrected.")
    comment = serializers.CharField(required=False, help_text="Shown to the annotators.")
    rejected = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Accept: annotation ids."
    )
    guideline_note = serializers.CharField(required=False, help_text="Guideline unclear: why.")


class ReviewResultSerializer(serializers.Serializer[dict[str, Any]]):
    review = ReviewSerializer()


class GoldLabelSerializer(serializers.ModelSerializer[GoldLabel]):
    external_id = serializers.CharField(source="item.external_id", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    flags = NameListField(read_only=True)

    class Meta:
        model = GoldLabel
        fields = [
            "item", "external_id", "choice", "min_rating", "max_rating", "flags",
            "explanation", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class MarkGoldSerializer(serializers.Serializer[dict[str, Any]]):
    item = serializers.IntegerField(help_text="The item id.")
    choice = serializers.ChoiceField(
        choices=Annotation.Choice.choices, required=False, help_text="Pairwise: required."
    )
    min_rating = serializers.IntegerField(required=False, min_value=1, help_text="SFT.")
    max_rating = serializers.IntegerField(required=False, min_value=1, help_text="SFT.")
    flags = NameListField(required=False, help_text="SFT: flags a correct answer sets.")
    explanation = serializers.CharField(
        required=False, default="", help_text="Markdown: the guideline excerpt."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("min_rating"), attrs.get("max_rating")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"max_rating": "must not be below min_rating"})
        return attrs


class FeedbackSerializer(serializers.ModelSerializer[AnnotationVerdict]):
    """A verdict on one of your annotations, with the review it came from."""

    item = serializers.IntegerField(source="annotation.item_id", read_only=True)
    decision = serializers.CharField(source="review.decision", read_only=True)
    adjudicated_choice = serializers.CharField(source="review.choice", read_only=True)
    adjudicated_response = serializers.CharField(source="review.response_text", read_only=True)
    comment = serializers.CharField(source="review.comment", read_only=True)
    reviewer = serializers.CharField(source="review.reviewer.username", read_only=True)
    reviewed_at = serializers.DateTimeField(source="review.created_at", read_only=True)

    class Meta:
        model = AnnotationVerdict
        fields = [
            "annotation", "item", "accepted", "decision", "adjudicated_choice",
            "adjudicated_response", "comment", "reviewer", "reviewed_at",
        ]  # fmt: skip
        read_only_fields = fields
