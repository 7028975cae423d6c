"""Who may call what. Every API lookup starts from the caller's Membership.

A project the caller is not a member of is a 404, so its existence is not disclosed; a member
whose role does not fit is a 403. Anonymous callers never get this far: DRF's IsAuthenticated
answers 401 first. The lookups themselves are `labeling.access`, shared with the HTML views.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.http import Http404
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from labeling import rows
from labeling.access import membership_for
from labeling.models import Assignment, GuidelineVersion, Membership, Project, Role

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
    Every heartbeat, submit and skip starts here: the SQL is written out (`labeling.rows`).
    """
    # A larger id would overflow the column's type, not just miss.
    found = rows.fetch_joined(_LEASE_JOIN, _LEASE_FROM, (pk, user.pk)) if pk <= MAX_ID else None
    if found is None:
        raise Http404("No such assignment.")
    assignment, project, membership, guideline = found
    assignment.project = membership.project = project  # the same row: joined once, shared
    membership.acknowledged_guideline = guideline
    return assignment, membership


MAX_ID = 2**63 - 1
_LEASE_JOIN = ((Assignment, "a"), (Project, "p"), (Membership, "m"), (GuidelineVersion, "g"))
_LEASE_FROM = (
    "FROM labeling_assignment a"
    " JOIN labeling_project p ON p.id = a.project_id"
    " JOIN labeling_membership m ON m.project_id = a.project_id AND m.user_id = a.annotator_id"
    " LEFT JOIN labeling_guidelineversion g ON g.id = m.acknowledged_guideline_id"
    " WHERE a.id = %s AND a.annotator_id = %s"
)
