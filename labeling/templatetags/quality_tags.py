"""Quality-control fragments that shared pages include with one tag each."""

from __future__ import annotations

from typing import Any

from django import template

from labeling import quality
from labeling.models import Membership, Project
from labeling.services import gold

register = template.Library()


@register.inclusion_tag("labeling/_paused_notice.html")
def paused_notice(project: Project, membership: Membership) -> dict[str, Any]:
    """Admins see who is paused on the project page (reviewers and annotators do not)."""
    paused = gold.paused_members(project) if membership.is_admin else []
    return {"project": project, "paused": paused}


@register.inclusion_tag("labeling/_guideline_notes.html")
def guideline_notes(project: Project) -> dict[str, Any]:
    return {"groups": quality.notes_by_guideline(project)}


@register.inclusion_tag("labeling/_guideline_outcomes.html")
def guideline_outcomes(project: Project) -> dict[str, Any]:
    return {"project": project, "outcomes": quality.guideline_outcomes(project)}


@register.filter
def percent(rate: float | None) -> str:
    """0.8333 -> "83%"; None (nothing to divide by) -> "—"."""
    return "—" if rate is None else f"{rate:.0%}"
