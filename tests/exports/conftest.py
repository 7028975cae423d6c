"""Export fixtures: three judges, a pairwise project wanting 3 votes, an SFT project."""

import pytest

from labeling.models import Role
from tests.exports.builders import annotators, pair_item, vote
from tests.factories import MembershipFactory, PairwiseProjectFactory, ProjectFactory, UserFactory


@pytest.fixture
def judges(db):
    return annotators("alice", "bob", "carol")


@pytest.fixture
def votes_project(db):
    """Three judgements wanted per pair."""
    return PairwiseProjectFactory(slug="votes", name="Votes", overlap=3)


@pytest.fixture
def answers_project(db):
    return ProjectFactory(slug="answers", name="Answers", overlap=2)


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


@pytest.fixture
def judged(pairwise_project):
    """The fixture pairwise project (overlap 2) with 10 items judged twice: see job_data.KEPT."""
    first, second = UserFactory(username="judge1"), UserFactory(username="judge2")
    for user in (first, second):
        MembershipFactory(user=user, project=pairwise_project, role=Role.ANNOTATOR)
    for n in range(10):
        item = pair_item(pairwise_project, f"q{n}", f"Question {n}?")
        vote(item, first, "a", minutes=n)
        other = "a" if n < 6 else "b" if n < 8 else "tie"
        vote(item, second, other, minutes=n)
    return pairwise_project
