"""Shared fixtures: named actors on an SFT and a pairwise project.

Tests that need PostgreSQL or Redis call `require_postgres()` / `require_redis()`: they skip
with a message on a machine without them, and fail instead when REQUIRE_SERVICES=1 (CI).
"""

import os
import re
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Role
from tests.factories import MembershipFactory, PairwiseProjectFactory, ProjectFactory, UserFactory


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        _unavailable(
            "needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/annotate"
        )


def require_redis() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        _unavailable("needs Redis: run with REDIS_URL=redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        _unavailable(f"Redis at {url} does not answer: {error}")
    return url


@pytest.fixture
def sft_project(db):
    return ProjectFactory(slug="sft-demo", name="SFT demo")


@pytest.fixture
def pairwise_project(db):
    return PairwiseProjectFactory(slug="pair-demo", name="Pairwise demo")


def _member_of_both(projects, username: str, role: str):
    """A user with the same role in the SFT and the pairwise fixture project."""
    user = UserFactory(username=username)
    for project in projects:
        MembershipFactory(user=user, project=project, role=role)
    return user


@pytest.fixture
def annotator(sft_project, pairwise_project):
    return _member_of_both((sft_project, pairwise_project), "alice", Role.ANNOTATOR)


@pytest.fixture
def other_annotator(sft_project, pairwise_project):
    return _member_of_both((sft_project, pairwise_project), "bob", Role.ANNOTATOR)


@pytest.fixture
def reviewer(sft_project, pairwise_project):
    return _member_of_both((sft_project, pairwise_project), "rita", Role.REVIEWER)


@pytest.fixture
def queue_admin(sft_project, pairwise_project):
    return _member_of_both((sft_project, pairwise_project), "ada", Role.ADMIN)


@pytest.fixture
def outsider(db):
    """A user with an account but no membership in the fixtures' projects."""
    return UserFactory(username="mallory")


TRANSACTION_CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT)\b", re.I)


@contextmanager
def assert_statements(expected: int):
    """Count SQL statements, leaving out transaction control (SQLite logs BEGIN/COMMIT)."""
    with CaptureQueriesContext(connection) as context:
        yield
    statements = [
        q["sql"] for q in context.captured_queries if not TRANSACTION_CONTROL.match(q["sql"])
    ]
    assert len(statements) == expected, "\n\n".join(statements)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.3 s a user; tests need no resistance to brute force."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
