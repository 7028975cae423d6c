"""Forms of the quality-control pages: review and gold settings, marking gold items."""

from __future__ import annotations

from typing import Any

from django import forms

from labeling.models import Annotation, Item, Project


class QualitySettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = [
            "review_min_agreement",
            "review_max_rating",
            "review_sample_percent",
            "quality_seed",
            "gold_percent",
            "gold_min_answers",
            "gold_min_accuracy",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("review_min_agreement", "gold_min_accuracy"):
            if not 0 <= (data.get(name) or 0) <= 1:
                self.add_error(name, "Between 0 and 1.")
        for name in ("review_sample_percent", "gold_percent"):
            if (data.get(name) or 0) > 100:
                self.add_error(name, "At most 100.")
        return data


class GoldForm(forms.Form):
    """An item of the project, by its import id or number, and its expected answer."""

    item = forms.CharField(max_length=200, help_text="The item's import id, or item-<number>.")
    choice = forms.ChoiceField(choices=[("", "—"), *Annotation.Choice.choices], required=False)
    min_rating = forms.IntegerField(min_value=1, required=False)
    max_rating = forms.IntegerField(min_value=1, required=False)
    flags = forms.CharField(
        required=False, help_text="Flags a correct answer sets, comma-separated."
    )
    explanation = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="Markdown: the guideline excerpt shown to annotators who miss it.",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_item(self) -> Item:
        key = self.cleaned_data["item"].strip()
        items = Item.objects.for_project(self.project)
        number = key.removeprefix("item-")
        found = items.filter(external_id=key).first() or (
            items.filter(pk=int(number)).first() if number.isdigit() else None
        )
        if found is None:
            raise forms.ValidationError("No such item in this project.")
        return found

    def clean_flags(self) -> list[str]:
        return [f.strip() for f in self.cleaned_data["flags"].split(",") if f.strip()]

    def expected(self) -> dict[str, Any]:
        data = self.cleaned_data
        keys = ("choice", "min_rating", "max_rating", "flags", "explanation")
        return {key: data[key] for key in keys}


class PromoteForm(forms.Form):
    min_votes = forms.IntegerField(min_value=2, initial=3)
