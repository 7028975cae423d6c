from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from labeling.rendering import render_markdown, render_plain

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Sanitized markdown (see labeling.rendering)."""
    return render_markdown(text or "")


@register.filter
def plain(text: str) -> SafeString:
    return render_plain(text or "")
