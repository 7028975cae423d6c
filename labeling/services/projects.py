"""Projects and their members. Sign-up is closed: admins add people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from labeling.models import Membership, Project, Role


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
