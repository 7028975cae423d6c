"""What the finetune API reads and writes. Serializers only shape data: services validate.

The launch body's settings are described from finetune.options.FIELDS (names, bounds, help),
so the schema and the checks that finetune.options makes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from finetune.models import FinetuneRun, Method
from finetune.options import FIELDS, LORA_MODULES, Field

SUMMARY_FIELDS = [
    "id", "export", "method", "base_model", "status", "progress", "step", "total_steps",
    "cancel_requested", "error", "created_by", "created_at", "started_at", "finished_at",
]  # fmt: skip


# Strings described inline rather than as named enums: those would collide in the schema with
# the other apps' `status` and `method` enums, which hold other values.
@extend_schema_field(
    {"type": "string", "enum": FinetuneRun.Status.values}, component_name="FinetuneStatus"
)
class StatusField(serializers.CharField):
    """queued, running, then succeeded, failed or cancelled."""


@extend_schema_field({"type": "string", "enum": Method.values}, component_name="FinetuneMethod")
class MethodField(serializers.CharField):
    """sft (on an sft export) or dpo (on a dpo export)."""


class FinetuneRunSummarySerializer(serializers.ModelSerializer[FinetuneRun]):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    status = StatusField(read_only=True, help_text="queued, running, then a final status.")
    method = MethodField(read_only=True)

    class Meta:
        model = FinetuneRun
        fields = SUMMARY_FIELDS
        read_only_fields = fields


class FinetuneRunSerializer(FinetuneRunSummarySerializer):
    class Meta:
        model = FinetuneRun
        fields = [
            *SUMMARY_FIELDS, "lora", "hyperparameters", "seed", "estimate", "forced",
            "metrics", "final_metrics", "logs", "adapter_path", "report_path", "device",
            "device_memory", "worker", "heartbeat_at",
        ]  # fmt: skip
        read_only_fields = fields


def _described(field: Field) -> serializers.Field:
    """A schema-only description of one setting (finetune.options checks the values)."""
    extra: dict[str, Any] = {
        "required": False,
        "help_text": f"{field.help}; default {field.default}",
    }
    if field.kind is bool:
        return serializers.BooleanField(**extra)
    if field.kind is tuple:
        return serializers.ListField(child=serializers.ChoiceField(LORA_MODULES), **extra)
    bounds: dict[str, Any] = {"min_value": field.minimum, "max_value": field.maximum}
    if field.kind is int:
        return serializers.IntegerField(allow_null=field.optional, **bounds, **extra)
    return serializers.FloatField(**bounds, **extra)


class FinetuneLaunchSerializer(serializers.Serializer[dict[str, Any]]):
    export = serializers.IntegerField(
        help_text="A succeeded sft export (method sft) or dpo export."
    )
    method = MethodField(help_text="sft (on an sft export) or dpo (on a dpo export).")
    base_model = serializers.CharField(
        help_text="A model folder inside FINETUNE_MODELS_DIR: its name, or its absolute path."
    )
    force = serializers.BooleanField(
        required=False, default=False, help_text="Launch even if the estimate does not fit."
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return super().get_fields() | {field.name: _described(field) for field in FIELDS}


class FinetuneEstimatePartSerializer(serializers.Serializer[dict[str, Any]]):
    part = serializers.CharField()
    bytes = serializers.IntegerField()


class FinetuneEstimateSerializer(serializers.Serializer[dict[str, Any]]):
    parameters = serializers.IntegerField()
    trainable_parameters = serializers.IntegerField()
    parts = FinetuneEstimatePartSerializer(many=True)
    total = serializers.IntegerField(help_text="Bytes.")
    device = serializers.CharField(allow_null=True)
    device_memory = serializers.IntegerField(allow_null=True, help_text="Bytes.")
    fits = serializers.BooleanField(allow_null=True, help_text="null: the device is unknown.")
    refusal = serializers.CharField(allow_null=True)


class FinetuneErrorsSerializer(serializers.Serializer[dict[str, Any]]):
    """`{"errors": {field: reason}}`; declared in get_fields, as `errors` is a Serializer's own."""

    def get_fields(self) -> dict[str, serializers.Field]:
        reasons = serializers.DictField(
            child=serializers.CharField(), help_text="Field name -> the reason it was refused."
        )
        return {"errors": reasons}
