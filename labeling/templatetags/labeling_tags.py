from __future__ import annotations

from django import template
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from labeling.models import Annotation
from labeling.rendering import render_markdown, render_plain
from labeling.services.annotations import to_screen

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Sanitized markdown (see labeling.rendering)."""
    return render_markdown(text or "")


@register.filter
def plain(text: str) -> SafeString:
    return render_plain(text or "")


@register.filter
def as_seen(choice: str, annotation: Annotation) -> str:
    """A stored pairwise choice as `annotation`'s annotator saw it: the screen side of their
    lease (sides are randomized per lease) and the start of that response. Plain text: the
    template escapes it. Expects the annotation's assignment and item responses loaded."""
    if choice not in ("a", "b"):
        return Annotation.Choice(choice).label if choice else "—"
    side = to_screen(choice, annotation.assignment.swapped)
    position = 0 if choice == "a" else 1
    responses = annotation.item.responses.all()
    text = next((r.text for r in responses if r.position == position), "")
    return f"{side.capitalize()} response: “{Truncator(text).chars(80)}”"
