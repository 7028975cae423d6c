"""Export fixtures: three judges, a pairwise project wanting 3 votes, an SFT project."""

import pytest

from tests.exports.builders import annotators
from tests.factories import PairwiseProjectFactory, ProjectFactory


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
