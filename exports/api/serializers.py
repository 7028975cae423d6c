"""The export API's shapes. Create takes the command's options by their option names."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exports import jobs
from exports.formats import STYLES
from exports.models import Export
from exports.options import FORMATS, ExportOptions
from exports.policies import TIE_POLICIES
from exports.splits import parse_split


class ExportRequestSerializer(serializers.Serializer[dict[str, Any]]):
    format = serializers.ChoiceField(choices=FORMATS)
    # Shadows Field.style for type checkers only: the metaclass moves fields off the class.
    style = serializers.ChoiceField(choices=STYLES, required=False, allow_null=True)  # type: ignore[assignment]
    bare = serializers.BooleanField(default=False)
    min_votes = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    min_agreement = serializers.FloatField(
        required=False, allow_null=True, min_value=0, max_value=1
    )
    ties = serializers.ChoiceField(choices=TIE_POLICIES, required=False, allow_null=True)
    per_annotator = serializers.BooleanField(default=False)
    min_rating = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    blocking_flags = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True
    )
    all_responses = serializers.BooleanField(default=False)
    since = serializers.DateTimeField(required=False, allow_null=True)
    guideline_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    exclude_annotators = serializers.ListField(
        child=serializers.CharField(), required=False, default=list
    )
    splits = serializers.DictField(
        child=serializers.FloatField(),
        required=False,
        default=dict,
        help_text='Held-out splits by name, e.g. {"test": 0.1}; train takes the rest.',
    )

    def __init__(self, *args: Any, members: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = members

    def validate_exclude_annotators(self, names: list[str]) -> list[str]:
        # Only the project's members: any other name would tell whether an account exists.
        unknown = sorted(set(names) - self.members)
        if unknown:
            raise serializers.ValidationError(f"not members of this project: {', '.join(unknown)}")
        return names

    def validate_splits(self, splits: dict[str, float]) -> tuple[tuple[str, float], ...]:
        try:
            return tuple(parse_split(f"{name}={fraction}") for name, fraction in splits.items())
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None

    def options(self) -> ExportOptions:
        data = dict(self.validated_data)
        flags = data.get("blocking_flags")
        data["blocking_flags"] = None if flags is None else tuple(sorted(set(flags)))
        data["exclude_annotators"] = tuple(data["exclude_annotators"])
        return ExportOptions(**data)


class ExportFileSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField()
    sha256 = serializers.CharField(allow_null=True)
    rows = serializers.IntegerField(allow_null=True)
    bytes = serializers.IntegerField()
    url = serializers.CharField()


# Described as its own component: a named `status` enum would collide in the schema with the
# other apps' `status` enums.
@extend_schema_field(
    {"type": "string", "enum": Export.Status.values}, component_name="ExportStatus"
)
class StatusField(serializers.CharField):
    """queued, running, then succeeded or failed."""


class ExportSerializer(serializers.ModelSerializer[Export]):
    status = StatusField(read_only=True, help_text="queued, running, then succeeded or failed.")
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    percent = serializers.IntegerField(read_only=True)
    rows = serializers.IntegerField(read_only=True)
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "format", "style", "status", "policy", "total_annotations",
            "processed_annotations", "percent", "rows", "counts", "dropped", "files", "error",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(ExportFileSerializer(many=True))
    def get_files(self, export: Export) -> list[dict[str, Any]]:
        """Every file a finished job wrote, with where to download it; none for others."""
        files = []
        for name, facts in jobs.file_facts(export).items():
            url = reverse(
                "exports-api:export-file",
                kwargs={"slug": export.project.slug, "pk": export.pk, "name": name},
            )
            files.append({"name": name, **facts, "url": url})
        return files
