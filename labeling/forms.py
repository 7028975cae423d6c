"""HTML forms. Annotation fields are validated by the annotations service, not here."""

from __future__ import annotations

from typing import Any

from django import forms

from labeling.models import Project, Role


class NameListField(forms.CharField):
    """A comma-separated list of short names, stored as a JSON list."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        names = [part.strip() for part in (value or "").split(",")]
        return list(dict.fromkeys(name for name in names if name))

    def validate(self, value: Any) -> None:
        for name in value:
            if len(name) > 40:
                raise forms.ValidationError(f"'{name[:40]}…' is longer than 40 characters.")


class ProjectForm(forms.ModelForm):
    flags = NameListField(required=False, help_text="Comma-separated, e.g. unsafe, factual_error.")
    criteria = NameListField(
        required=False, help_text="Pairwise, comma-separated, e.g. helpfulness, honesty."
    )

    class Meta:
        model = Project
        fields = [
            "name",
            "slug",
            "kind",
            "description",
            "overlap",
            "lease_seconds",
            "rating_scale",
            "flags",
            "criteria",
            "randomize_order",
        ]


class ProjectSettingsForm(ProjectForm):
    """The kind and slug are fixed once items exist."""

    class Meta(ProjectForm.Meta):
        fields = [f for f in ProjectForm.Meta.fields if f not in ("slug", "kind")]
        help_texts = {
            "overlap": "Annotations wanted per item. Raising it queues every item for more; "
            "lowering it stops new claims on items that already have enough (nothing done is "
            "removed)."
        }


class GuidelineForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 24}), max_length=200_000)
    changelog = forms.CharField(
        max_length=300, help_text="One line: what changed and why, shown to annotators."
    )


class InviteForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]{1,150}$", max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV, or either gzipped.")
    skip_bad_lines = forms.BooleanField(
        required=False, help_text="Import the good lines and list the bad ones."
    )


class SkipForm(forms.Form):
    REASONS = [
        ("unclear", "Prompt is unclear"),
        ("expertise", "Needs expertise I lack"),
        ("offensive", "Offensive content"),
        ("broken", "Item is broken"),
        ("other", "Other"),
    ]
    reason = forms.ChoiceField(choices=REASONS)
