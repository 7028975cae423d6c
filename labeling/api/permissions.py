"""Who may call what. Every API lookup starts from the caller's Membership.

A project the caller is not a member of is a 404, so its existence is not disclosed; a member
whose role does not fit is a 403. Anonymous callers never get this far: DRF's IsAuthenticated
answers 401 first. The lookups themselves are `labeling.access`, shared with the HTML views.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.db.models import FilteredRelation, Q
from django.http import Http404
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from labeling.access import membership_for, one_or_none
from labeling.models import Assignment, Membership, Role

MEMBERS = frozenset(Role.values)
REVIEWERS = frozenset({Role.ADMIN, Role.REVIEWER})
ADMINS = frozenset({Role.ADMIN})


class ProjectScoped(APIView):
    """For views under `projects/<slug>/`: the caller's membership, looked up once per request.

    Reads (GET, HEAD, OPTIONS) need a role in `read_roles`, anything else one in `write_roles`.
    """

    read_roles: frozenset[str] = MEMBERS
    write_roles: frozenset[str] = ADMINS

    @cached_property
    def membership(self) -> Membership:
        safe = self.request.method in SAFE_METHODS
        roles = self.read_roles if safe else self.write_roles
        return membership_for(self.request.user, self.kwargs["slug"], roles)


def lease_for(user: Any, pk: int) -> tuple[Assignment, Membership]:
    """The caller's own lease and their membership in its project, in one query.

    Another user's lease is a 404, and so is one in a project the caller has since left.
    """
    mine = FilteredRelation("project__memberships", condition=Q(project__memberships__user=user))
    assignment = one_or_none(
        Assignment.objects.filter(pk=pk, annotator=user)
        .annotate(membership=mine)
        .select_related(
            "project",
            "membership__acknowledged_guideline",  # type: ignore[misc]  # stubs miss FilteredRelation
        )
    )
    membership: Membership | None = getattr(assignment, "membership", None)
    if assignment is None or membership is None:
        raise Http404("No such assignment.")
    membership.project = assignment.project  # the same row: joined once, shared
    return assignment, membership
