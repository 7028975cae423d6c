"""Read models of the dedup page: each group's members with a word diff to the representative."""

from __future__ import annotations

from dataclasses import dataclass

from curation.dedup.services import ACTIONABLE, item_text
from curation.models import DedupRun, DuplicateGroup, DuplicateMember
from labeling.diffing import DiffLine, line_diff
from labeling.models import Item


@dataclass
class MemberView:
    item: Item
    similarity: float
    is_representative: bool
    words: list[DiffLine]  # this member's text against the representative's, word by word


@dataclass
class GroupView:
    group: DuplicateGroup
    members: list[MemberView]
    actionable: bool


def group_views(groups: list[DuplicateGroup]) -> list[GroupView]:
    """Members in id order (oldest first), with two queries for the whole page."""
    members = (
        DuplicateMember.objects.filter(group__in=groups)
        .select_related("item")
        .order_by("group_id", "item_id")
    )
    by_group: dict[int, list[DuplicateMember]] = {group.pk: [] for group in groups}
    for member in members:
        by_group[member.group_id].append(member)
    return [_view(group, by_group[group.pk]) for group in groups]


def _view(group: DuplicateGroup, members: list[DuplicateMember]) -> GroupView:
    texts = {m.item_id: item_text(m.item.messages) for m in members}
    base = texts.get(group.representative_id, "")
    views = [
        MemberView(
            item=m.item,
            similarity=m.similarity,
            is_representative=m.item_id == group.representative_id,
            words=_word_diff(base, texts[m.item_id]),
        )
        for m in members
    ]
    return GroupView(group, views, group.kind in ACTIONABLE)


def _word_diff(old: str, new: str) -> list[DiffLine]:
    # labeling's line diff, one word a "line": the same diff, at the granularity duplicates need.
    return [line for line in line_diff("\n".join(old.split()), "\n".join(new.split()))
            if line.op != "delete"]  # fmt: skip


def near_duplicate_representatives(project_id: int) -> dict[int, int]:
    """item id -> its near-duplicate group's representative, from the project's latest
    succeeded dedup run: what an export's split keys on, so a group never straddles splits."""
    run = (
        DedupRun.objects.filter(project_id=project_id, status=DedupRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if run is None:
        return {}
    members = DuplicateMember.objects.filter(
        group__run=run, group__kind=DuplicateGroup.Kind.NEAR
    ).order_by("group_id", "item_id")
    representatives: dict[int, int] = {}
    for item_id, representative in members.values_list("item_id", "group__representative_id"):
        representatives.setdefault(item_id, representative)
    return representatives
