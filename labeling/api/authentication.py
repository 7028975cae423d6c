"""Token authentication with its lookup written out: every API request of an annotation
client starts with it, and the ORM compiled the same two-table query each time."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling import rows


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, the same answers, one hand-written query."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        found = rows.fetch_joined(*_token_query(), (key,))
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token


@cache
def _token_query() -> tuple[rows.Tables, str]:
    """The token joined to its user; the user model is the project's, so asked for at run time."""
    quote, user = connection.ops.quote_name, get_user_model()._meta
    rest = (
        f"FROM {quote(Token._meta.db_table)} t"
        f" JOIN {quote(user.db_table)} u ON u.{rows.quoted(user.pk)} = t.user_id"
        " WHERE t.key = %s"
    )
    return ((Token, "t"), (get_user_model(), "u")), rest
