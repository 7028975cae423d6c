"""Versioned guidelines: numbering, acknowledgement gating, diffs."""

import pytest

from labeling.diffing import DiffLine, line_diff
from labeling.models import GuidelineVersion, Membership, Project
from labeling.services import assignments, guidelines
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db


def member(user, project) -> Membership:
    return Membership.objects.select_related(
        "project", "project__current_guideline", "acknowledged_guideline"
    ).get(user=user, project=project)


def test_publish_numbers_versions_and_makes_the_latest_current(sft_project, queue_admin):
    v1 = guidelines.publish(project=sft_project, author=queue_admin, body="a", changelog=" one ")
    v2 = guidelines.publish(project=sft_project, author=queue_admin, body="b", changelog="two")
    assert (v1.number, v2.number, v1.changelog) == (1, 2, "one")
    assert Project.objects.get(pk=sft_project.pk).current_guideline_id == v2.pk
    assert member(queue_admin, sft_project).acknowledged_guideline_id == v2.pk


def test_new_version_gates_the_next_item_until_acknowledged(sft_project, annotator, queue_admin):
    ItemFactory(project=sft_project)
    guidelines.publish(project=sft_project, author=queue_admin, body="rule 1", changelog="one")
    with pytest.raises(assignments.GuidelinesNotAcknowledged):
        assignments.claim_next(membership=member(annotator, sft_project))
    guidelines.acknowledge(
        membership=member(annotator, sft_project), version=GuidelineVersion.objects.get(number=1)
    )
    assert assignments.claim_next(membership=member(annotator, sft_project)) is not None


def test_a_held_lease_is_still_renewed_after_a_new_version(sft_project, annotator, queue_admin):
    ItemFactory(project=sft_project)
    lease = assignments.claim_next(membership=member(annotator, sft_project))
    guidelines.publish(project=sft_project, author=queue_admin, body="rule", changelog="one")
    assert assignments.claim_next(membership=member(annotator, sft_project)).pk == lease.pk


def test_acknowledging_an_outdated_version_is_refused(sft_project, annotator, queue_admin):
    v1 = guidelines.publish(project=sft_project, author=queue_admin, body="a", changelog="one")
    guidelines.publish(project=sft_project, author=queue_admin, body="b", changelog="two")
    with pytest.raises(guidelines.StaleAcknowledgement):
        guidelines.acknowledge(membership=member(annotator, sft_project), version=v1)
    assert member(annotator, sft_project).acknowledged_guideline_id is None


def test_changes_since_acknowledged_diffs_against_the_version_read(
    sft_project, annotator, queue_admin
):
    v1 = guidelines.publish(
        project=sft_project, author=queue_admin, body="keep\nold", changelog="one"
    )
    guidelines.acknowledge(membership=member(annotator, sft_project), version=v1)
    guidelines.publish(project=sft_project, author=queue_admin, body="keep\nnew", changelog="two")
    assert guidelines.changes_since_acknowledged(member(annotator, sft_project)) == [
        DiffLine("equal", "keep"),
        DiffLine("delete", "old"),
        DiffLine("insert", "new"),
    ]


def test_line_diff_marks_inserts_and_deletes():
    lines = line_diff("a\nb\nc", "a\nc\nd")
    assert [(line.marker, line.text) for line in lines] == [
        (" ", "a"),
        ("-", "b"),
        (" ", "c"),
        ("+", "d"),
    ]
