"""Versioned guidelines: publish a version, acknowledge it, compare two."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from labeling.diffing import DiffLine, line_diff
from labeling.models import GuidelineVersion, Membership, Project


class StaleAcknowledgement(Exception):
    """The version being acknowledged is no longer the current one."""


@transaction.atomic
def publish(*, project: Project, author: Any, body: str, changelog: str) -> GuidelineVersion:
    """Add the next version and make it current. Annotators must acknowledge it."""
    # Lock the project row so two admins publishing at once get numbers n and n+1,
    # not a unique-constraint error.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    latest = project.guidelines.aggregate(n=Max("number"))["n"] or 0
    version = GuidelineVersion.objects.create(
        project=project, number=latest + 1, body=body, changelog=changelog.strip(), author=author
    )
    Project.objects.filter(pk=project.pk).update(current_guideline=version)
    project.current_guideline = version
    # The author has read what they wrote.
    Membership.objects.filter(project=project, user=author).update(acknowledged_guideline=version)
    return version


def acknowledge(*, membership: Membership, version: GuidelineVersion) -> None:
    """Record that the member read `version`. Idempotent; refuses a version no longer current."""
    current_id = (
        Project.objects.filter(pk=membership.project_id)
        .values_list("current_guideline_id", flat=True)
        .get()
    )
    if version.pk != current_id:
        raise StaleAcknowledgement("A newer version was published; read that one first.")
    Membership.objects.filter(pk=membership.pk).update(acknowledged_guideline=version)
    membership.acknowledged_guideline = version


def changes_since_acknowledged(membership: Membership) -> list[DiffLine]:
    """What changed between the version the member last read and the current one."""
    current = membership.project.current_guideline
    if current is None:
        return []
    seen = membership.acknowledged_guideline
    return line_diff(seen.body if seen else "", current.body)


def compare(*, old: GuidelineVersion, new: GuidelineVersion) -> list[DiffLine]:
    return line_diff(old.body, new.body)
