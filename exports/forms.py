"""The Export page's form: the command's options, checked field by field.

Types and ranges are checked here; whether the options fit the project and each other is
`options.resolve`'s job (one place), and its problems come back beside the field they name.
"""

from __future__ import annotations

from typing import Any

from django import forms

from exports.errors import InvalidOptions
from exports.formats import STYLES
from exports.options import FORMATS_BY_KIND, ExportOptions
from exports.policies import TIE_POLICIES
from exports.splits import parse_split
from labeling.models import Project

DEFAULT = [("", "project default")]


class ExportForm(forms.Form):
    format = forms.ChoiceField()
    style = forms.ChoiceField(choices=DEFAULT + [(s, s) for s in STYLES], required=False)
    bare = forms.BooleanField(required=False, help_text="Only the trainer's columns: no id, meta.")
    min_votes = forms.IntegerField(required=False, min_value=1, label="Min votes")
    min_agreement = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Min agreement", help_text="0 to 1."
    )
    ties = forms.ChoiceField(choices=DEFAULT + [(t, t) for t in TIE_POLICIES], required=False)
    per_annotator = forms.BooleanField(required=False, help_text="A row per judgement.")
    min_rating = forms.IntegerField(required=False, min_value=1, label="Min rating")
    all_responses = forms.BooleanField(required=False, help_text="Not only the best per prompt.")
    splits = forms.CharField(
        required=False, label="Split", help_text="e.g. test=0.1, validation=0.05"
    )
    since = forms.DateTimeField(required=False, help_text="2025-01-31 or an ISO time; UTC.")
    guideline_version = forms.IntegerField(required=False, min_value=1)
    exclude_annotators = forms.MultipleChoiceField(required=False, label="Exclude annotators")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        names = FORMATS_BY_KIND[project.kind]
        self.fields["format"].choices = [(name, name) for name in names]  # type: ignore[attr-defined]
        members = project.memberships.order_by("user__username").values_list("user__username")
        choices = [(name, name) for (name,) in members]
        self.fields["exclude_annotators"].choices = choices  # type: ignore[attr-defined]
        for name in ("min_votes", "min_agreement", "ties", "per_annotator"):
            if not project.is_pairwise:
                del self.fields[name]
        for name in ("min_rating", "all_responses"):
            if project.is_pairwise:
                del self.fields[name]

    def clean_splits(self) -> tuple[tuple[str, float], ...]:
        parts = [part.strip() for part in self.cleaned_data["splits"].split(",") if part.strip()]
        try:
            return tuple(parse_split(part) for part in parts)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def options(self) -> ExportOptions:
        """The cleaned options; call after is_valid()."""
        data = self.cleaned_data
        return ExportOptions(
            format=data["format"],
            style=data["style"] or None,
            bare=data["bare"],
            min_votes=data.get("min_votes"),
            min_agreement=data.get("min_agreement"),
            ties=data.get("ties") or None,
            per_annotator=data.get("per_annotator", False),
            min_rating=data.get("min_rating"),
            all_responses=data.get("all_responses", False),
            since=data["since"],
            guideline_version=data["guideline_version"],
            exclude_annotators=tuple(data["exclude_annotators"]),
            splits=data["splits"],
        )

    def add_problems(self, error: InvalidOptions) -> None:
        """Show the service's problems beside the fields they name."""
        for name, problems in error.fields.items():
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)
