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
        with connection.cursor() as cursor:
            cursor.execute(_token_sql(), (key,))
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = rows.load_joined(row, _token_join())
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token


@cache
def _token_join() -> tuple[tuple[type[Any], str], ...]:
    return ((Token, "t"), (get_user_model(), "u"))


@cache
def _token_sql() -> str:
    quote, user = connection.ops.quote_name, get_user_model()._meta
    return (  # names from the models' metadata, never input
        f"SELECT {rows.select_joined(_token_join())} FROM {quote(Token._meta.db_table)} t"  # noqa: S608
        f" JOIN {quote(user.db_table)} u ON u.{rows.quoted(user.pk)} = t.user_id"
        " WHERE t.key = %s"
    )
