"""Projects and their members. Sign-up is closed: admins add people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from labeling.models import Item, Membership, Project, Role
from labeling.services import reviews


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    # A one-time link to set a password, for a user created by this invitation.
    set_password_path: str | None


@transaction.atomic
def create_project(*, created_by: Any, **fields: Any) -> Project:
    """Create a project; its creator becomes its first admin."""
    project = Project.objects.create(created_by=created_by, **fields)
    Membership.objects.create(user=created_by, project=project, role=Role.ADMIN)
    return project


@transaction.atomic
def invite(*, project: Project, username: str, email: str = "", role: str) -> Invitation:
    """Add a member, creating the account (without a password) if it does not exist.

    Idempotent: inviting an existing member changes their role.
    """
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(
        user=user, project=project, defaults={"role": role}
    )
    return Invitation(membership, set_password_link(user) if created else None)


def set_password_link(user: Any) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


def remove_member(*, membership: Membership) -> None:
    membership.delete()


def lock_settings(project: Project) -> int:
    """Lock the project's row for a settings change, in the caller's transaction; returns the
    overlap stored before it. NO KEY: claims, which reference the row, are not held up."""
    rows = Project.objects.select_for_update(no_key=True).filter(pk=project.pk)
    return rows.values_list("overlap", flat=True).get()


def overlap_changed(*, project: Project, before: int) -> None:
    """Carry a new overlap to the items: their open slots, and a fresh review triage."""
    if project.overlap == before:
        return
    shift_open_slots(project=project, delta=project.overlap - before)
    # Items may count as finished now without a new annotation: look at all again.
    reviews.reset_triage(project_id=project.pk)


def shift_open_slots(*, project: Project, delta: int) -> int:
    """After the project's overlap changed by `delta`: every item gains (or gives up) as many
    open slots. Returns the items changed.

    An increment, like a claim's decrement and a release's increment, so it commutes with the
    claims and releases running meanwhile and needs no lock. Items out of the queue (duplicate,
    filtered) shift too, since they resume where they were when kept again; gold items take no
    slot (a demoted one is counted afresh). An item that already has more leases and annotations
    than a lowered overlap keeps them: its open slots stop at zero.
    """
    if not delta:
        return 0
    items = Item.objects.filter(project=project).exclude(status=Item.Status.GOLD)
    return items.update(open_slots=Greatest(F("open_slots") + delta, 0))
