"""Read models of the quality-control pages: the review card, feedback, guideline outcomes."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, prefetch_related_objects

from labeling.diffing import DiffLine, line_diff
from labeling.models import (
    Annotation,
    AnnotationVerdict,
    GuidelineNote,
    GuidelineVersion,
    Membership,
    Project,
    ReviewTask,
)
from labeling.services import gold
from labeling.services.reviews import REASON_LABELS, agreement

CHOICE_LABELS = {"a": "A", "b": "B", "tie": "Tie", "both_bad": "Both bad"}


@dataclass(frozen=True)
class ShownAnnotation:
    annotation: Annotation
    choice_label: str
    diff: list[DiffLine] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewCard:
    task: ReviewTask
    responses: list[tuple[str, str]]  # (letter, text), in stored order: A = position 0
    annotations: list[ShownAnnotation]
    tally: dict[str, int]
    agreement: float | None
    reasons: list[str]
    start_text: str  # SFT: what the corrected response starts from


def review_card(task: ReviewTask, corrected: str | None = None) -> ReviewCard:
    """Everything the reviewer sees of one item; SFT diffs are against `corrected`."""
    item = task.item
    votes = list(
        Annotation.objects.filter(item=item).select_related("annotator", "guideline").order_by("pk")
    )
    texts = item.responses.order_by("position").values_list("text", flat=True)
    start = corrected if corrected is not None else _best_response(votes)
    shown = [
        ShownAnnotation(vote, CHOICE_LABELS.get(vote.choice, ""), _diff(vote, start))
        for vote in votes
    ]
    choices = [vote.choice for vote in votes] if task.project.is_pairwise else []
    return ReviewCard(
        task=task,
        responses=list(zip("AB", texts, strict=False)),
        annotations=shown,
        tally={CHOICE_LABELS[c]: n for c, n in Counter(choices).items() if c in CHOICE_LABELS},
        agreement=agreement(choices),
        reasons=[REASON_LABELS.get(reason, reason) for reason in task.reasons],
        start_text=start,
    )


def _best_response(votes: list[Annotation]) -> str:
    rated = [vote for vote in votes if vote.response_text]
    if not rated:
        return ""
    return max(rated, key=lambda vote: (vote.rating or 0, vote.pk)).response_text


def _diff(vote: Annotation, corrected: str) -> list[DiffLine]:
    return line_diff(vote.response_text, corrected) if vote.response_text else []


def response_diffs(task: ReviewTask, corrected: str) -> list[ShownAnnotation]:
    """The live diffs of the reviewer's corrected response against each annotator's."""
    votes = Annotation.objects.filter(item_id=task.item_id).select_related("annotator")
    return [ShownAnnotation(vote, "", _diff(vote, corrected)) for vote in votes.order_by("pk")]


@dataclass(frozen=True)
class Feedback:
    verdicts: list[AnnotationVerdict]
    missed_gold: list[gold.GoldAnswer]
    gold_score: gold.GoldScore


def feedback(membership: Membership, limit: int = 100) -> Feedback:
    """Reviews of this member's own work, newest first, and the gold items they missed."""
    verdicts = (
        AnnotationVerdict.objects.filter(
            annotation__annotator_id=membership.user_id,
            annotation__project_id=membership.project_id,
        )
        .select_related("review__reviewer", "annotation__item", "annotation__assignment")
        .prefetch_related("annotation__item__responses")
        .order_by("-review__created_at", "-pk")[:limit]
    )
    graded = gold.answers(membership)
    missed = [answer for answer in graded if not answer.correct]
    # The page shows pairwise choices as the annotator saw them (the lease's sides, the
    # responses' text): load both for all rows at once.
    prefetch_related_objects(
        [answer.annotation for answer in missed], "assignment", "item__responses"
    )
    return Feedback(
        verdicts=list(verdicts),
        missed_gold=missed,
        gold_score=gold.score(graded),
    )


@dataclass(frozen=True)
class VersionOutcome:
    number: int | None
    annotations: int
    reviewed: int
    accepted: int
    rejected: int
    agreement: float | None  # pairwise: mean majority share of items with 2+ votes

    @property
    def acceptance(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None


def guideline_outcomes(project: Project) -> list[VersionOutcome]:
    """Per guideline version: annotations, review verdicts and (pairwise) agreement."""
    counts = (
        Annotation.objects.filter(project=project)
        .values("guideline__number")
        .annotate(
            total=Count("pk"),
            reviewed=Count("verdict"),
            accepted=Count("verdict", filter=Q(verdict__accepted=True)),
        )
        .order_by("-guideline__number")
    )
    shares = _agreement_by_version(project) if project.is_pairwise else {}
    return [
        VersionOutcome(
            number=row["guideline__number"],
            annotations=row["total"],
            reviewed=row["reviewed"],
            accepted=row["accepted"],
            rejected=row["reviewed"] - row["accepted"],
            agreement=shares.get(row["guideline__number"]),
        )
        for row in counts
    ]


def _agreement_by_version(project: Project) -> dict[int | None, float]:
    # Votes on one item are grouped per version: agreement among people reading the same text.
    choices: dict[tuple[int | None, int], list[str]] = defaultdict(list)
    rows = Annotation.objects.filter(project=project).values_list(
        "guideline__number", "item_id", "choice"
    )
    for number, item_id, choice in rows:
        choices[(number, item_id)].append(choice)
    shares: dict[int | None, list[float]] = defaultdict(list)
    for (version, _), votes in choices.items():
        share = agreement(votes)
        if len(votes) > 1 and share is not None:
            shares[version].append(share)
    return {number: round(sum(s) / len(s), 3) for number, s in shares.items()}


def notes_by_guideline(project: Project) -> list[tuple[GuidelineVersion | None, list[Any]]]:
    """Reviewers' "guideline unclear" notes, grouped by the version they were written under."""
    notes = (
        GuidelineNote.objects.filter(project=project)
        .select_related("guideline", "author", "item")
        .order_by("-guideline__number", "-created_at", "-pk")
    )
    groups: dict[int | None, list[GuidelineNote]] = {}
    versions: dict[int | None, GuidelineVersion | None] = {}
    for note in notes:
        groups.setdefault(note.guideline_id, []).append(note)
        versions[note.guideline_id] = note.guideline
    return [(versions[key], group) for key, group in groups.items()]
