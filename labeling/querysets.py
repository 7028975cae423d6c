"""Chainable reads. Every lookup that starts from a request goes through `visible_to(user)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Exists, OuterRef

if TYPE_CHECKING:
    from labeling.models import Project


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> ProjectQuerySet:
        """Projects the user is a member of; everything else is a 404."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class MembershipQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> MembershipQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(user=user)


class ItemQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> ItemQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(project__memberships__user=user)

    def for_project(self, project: Project) -> ItemQuerySet:
        return self.filter(project=project)

    def claimable_by(self, user: Any, *, project: Project) -> ItemQuerySet:
        """Open items of the project that this annotator has never been assigned."""
        from labeling.models import Assignment

        seen = Assignment.objects.filter(item=OuterRef("pk"), annotator=user)
        return self.filter(project=project, status="active", open_slots__gt=0).filter(~Exists(seen))


class AssignmentQuerySet(models.QuerySet):
    def live(self) -> AssignmentQuerySet:
        return self.filter(status="active")
