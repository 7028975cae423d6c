"""Aggregation policies: which annotations become training rows. Pure and deterministic.

Every annotation or item left out is counted under the rule that left it out (`Dropped`), so
an export can say why it holds the rows it holds. Annotation rules count annotations, item
rules count items; an annotation is counted under the first rule that drops it, in the order
the rules are checked below. docs/exports.md lists the rules and the defaults.

Reviewer decisions win over votes and ratings (issue 5): `preferences()` and the completion
selectors apply the item's review (read into `ItemRecord.review`) before the vote and the
ratings. Review rules are counted only when they leave something out, so exports of projects
without reviews record exactly the rules they did before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exports.rows import (
    ACCEPT,
    ADJUDICATE,
    REJECT,
    AnnotationRecord,
    Completion,
    ItemRecord,
    Preference,
    ReviewRecord,
)
from exports.tallies import Tally

# Annotation rules
ITEM_STATUS = "item_status"  # the item is marked duplicate or filtered
EXCLUDED_ANNOTATOR = "excluded_annotator"
SINCE = "since"
GUIDELINE_VERSION = "guideline_version"
NON_DECISIVE = "non_decisive"  # a tie or both_bad vote left out of the majority (--ties exclude)
BLOCKING_FLAG = "blocking_flag"
UNRATED = "unrated"
MIN_RATING = "min_rating"
NOT_BEST = "not_best"  # an accepted response beaten by a better-rated (or newer) one
# Item rules
NEEDS_CONVERSATIONAL = "needs_conversational"  # a system prompt or history: no standard style
MISSING_RESPONSES = "missing_responses"  # a pairwise item without exactly two responses
NON_DECISIVE_IN_ITEM = "non_decisive_in_item"  # --ties drop-item
MIN_VOTES = "min_votes"  # fewer judgements than asked, ties and both_bad included
NO_MAJORITY = "no_majority"  # as many votes for A as for B (none for either included)
MIN_AGREEMENT = "min_agreement"
# Review rules (issue 5): items for pairs, annotations for SFT and per-annotator pairs
REVIEW_REJECTED = "review_rejected"  # a reviewer rejected the item, or this annotation
REVIEW_NON_DECISIVE = "review_non_decisive"  # adjudicated as a tie or both bad: no pair
REVIEW_OVERRULED = "review_overruled"  # a vote against the adjudicated choice (--per-annotator)
REVIEW_REPLACED = "review_replaced"  # SFT: the reviewer's corrected response is exported instead

TIES_EXCLUDE = "exclude"
TIES_COUNT_AS_HALF = "count-as-half"
TIES_DROP_ITEM = "drop-item"
TIE_POLICIES = (TIES_EXCLUDE, TIES_COUNT_AS_HALF, TIES_DROP_ITEM)
DECISIVE = ("a", "b")


@dataclass
class Dropped:
    """How many annotations and items each rule left out."""

    annotations: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_rules(cls, annotation_rules: Iterable[str], item_rules: Iterable[str]) -> Dropped:
        """Start every rule that applies at zero, so the record lists the rules checked."""
        return cls(
            Counter(dict.fromkeys(annotation_rules, 0)), Counter(dict.fromkeys(item_rules, 0))
        )

    def annotation(self, rule: str, count: int = 1) -> None:
        self.annotations[rule] += count

    def item(self, rule: str, count: int = 1) -> None:
        self.items[rule] += count

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Rules in the order they are checked."""
        return {"annotations": dict(self.annotations), "items": dict(self.items)}


# Filters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    guideline_version: int | None = None
    excluded_annotators: frozenset[int] = frozenset()

    def rules(self) -> tuple[str, ...]:
        chosen = (
            (EXCLUDED_ANNOTATOR, bool(self.excluded_annotators)),
            (SINCE, self.since is not None),
            (GUIDELINE_VERSION, self.guideline_version is not None),
        )
        return (ITEM_STATUS, *(rule for rule, applies in chosen if applies))


def filter_annotations(
    annotations: Iterable[AnnotationRecord], filters: Filters, dropped: Dropped
) -> tuple[AnnotationRecord, ...]:
    kept = []
    for annotation in annotations:
        rule = _filtered_by(annotation, filters)
        if rule is None:
            kept.append(annotation)
        else:
            dropped.annotation(rule)
    return tuple(kept)


def _filtered_by(annotation: AnnotationRecord, filters: Filters) -> str | None:
    if annotation.annotator_id in filters.excluded_annotators:
        return EXCLUDED_ANNOTATOR
    if filters.since is not None and annotation.created_at < filters.since:
        return SINCE
    if filters.guideline_version not in (None, annotation.guideline_version):
        return GUIDELINE_VERSION
    return None


# Pairwise -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairPolicy:
    min_votes: int
    min_agreement: float = 0.5
    ties: str = TIES_EXCLUDE
    per_annotator: bool = False

    def rules(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(annotation rules, item rules) this policy checks."""
        annotation_rules = (NON_DECISIVE,) if self.ties == TIES_EXCLUDE else ()
        item_rules = [MISSING_RESPONSES]
        if self.ties == TIES_DROP_ITEM:
            item_rules.append(NON_DECISIVE_IN_ITEM)
        if not self.per_annotator:
            item_rules += [MIN_VOTES, NO_MAJORITY, MIN_AGREEMENT]
        return annotation_rules, tuple(item_rules)


def preferences(
    item: ItemRecord, votes: Sequence[AnnotationRecord], policy: PairPolicy, dropped: Dropped
) -> list[Preference]:
    """The item's preference pairs: one by majority, or one per judgement (per_annotator)."""
    if not policy.per_annotator:
        return majority(item, Tally.of(votes), policy, dropped)
    if len(item.responses) != 2:
        dropped.item(MISSING_RESPONSES)
        return []
    review = item.review
    if review is not None and review.decision != ACCEPT:
        if review.decision == REJECT:
            dropped.item(REVIEW_REJECTED)
            return []
        agreeing = [vote for vote in votes if vote.choice == review.choice]
        dropped.annotation(REVIEW_OVERRULED, len(votes) - len(agreeing))
        return _judgements(item, agreeing, dropped)
    if policy.ties == TIES_DROP_ITEM and Tally.of(votes).non_decisive:
        dropped.item(NON_DECISIVE_IN_ITEM)
        return []
    return _judgements(item, votes, dropped)


def majority(
    item: ItemRecord, tally: Tally, policy: PairPolicy, dropped: Dropped
) -> list[Preference]:
    """The item's pair by majority (or by a reviewer's adjudication) from its counted votes:
    what `preferences` does without `per_annotator`, for votes counted by the database."""
    if len(item.responses) != 2:
        dropped.item(MISSING_RESPONSES)
        return []
    if item.review is not None and item.review.decision != ACCEPT:
        return _reviewed(item, tally, item.review, dropped)
    decision = decide(tally, policy, dropped)
    if decision is None:
        return []
    winner, agreement, strength = decision
    meta = {
        "item": item.id,
        "votes": tally.as_meta(),
        "agreement": agreement,
        "chosen": winner,
        "strength": strength,
    }
    return [_pair(item, winner, key=item.key, margin=strength, meta=meta)]


def decide(tally: Tally, policy: PairPolicy, dropped: Dropped) -> tuple[str, float, float] | None:
    """An unreviewed item's majority from its counted votes, as (winner, agreement, mean
    strength of the winner's votes); None (and the rule counted in `dropped`) when there is
    none. `majority` without the records: the tallied export calls it on counts alone."""
    if policy.ties == TIES_DROP_ITEM and tally.non_decisive:
        dropped.item(NON_DECISIVE_IN_ITEM)
        return None
    if policy.ties == TIES_EXCLUDE:
        dropped.annotation(NON_DECISIVE, tally.non_decisive)
    score_a, score_b, counted = _scores(tally, policy.ties)
    rule = _rejection(tally, score_a, score_b, counted, policy)
    if rule is not None:
        dropped.item(rule)
        return None
    winner = "a" if score_a > score_b else "b"
    return winner, round(max(score_a, score_b) / counted, 4), tally.mean_strength(winner)


def _reviewed(
    item: ItemRecord, tally: Tally, review: ReviewRecord, dropped: Dropped
) -> list[Preference]:
    """A rejected item gives nothing; an adjudicated choice replaces the majority."""
    if review.decision == REJECT:
        dropped.item(REVIEW_REJECTED)
        return []
    if review.choice not in DECISIVE:
        dropped.item(REVIEW_NON_DECISIVE)
        return []
    strength = tally.mean_strength(review.choice)
    meta = {
        "item": item.id,
        "votes": tally.as_meta(),
        "chosen": review.choice,
        "strength": strength,
        "adjudicated": True,
    }
    return [_pair(item, review.choice, key=item.key, margin=strength, meta=meta)]


def _scores(tally: Tally, ties: str) -> tuple[float, float, int]:
    """(score of A, score of B, votes counted) under a tie policy."""
    if ties == TIES_COUNT_AS_HALF:
        half = tally.non_decisive / 2
        return tally.a + half, tally.b + half, tally.judgements
    return tally.a, tally.b, tally.a + tally.b


def _rejection(
    tally: Tally, score_a: float, score_b: float, counted: int, policy: PairPolicy
) -> str | None:
    # min_votes asks whether the item is judged enough (every judgement counts, a tie too);
    # the majority and the agreement are then over the votes the tie policy counts.
    if tally.judgements < policy.min_votes:
        return MIN_VOTES
    if score_a == score_b:
        return NO_MAJORITY
    if max(score_a, score_b) / counted < policy.min_agreement:
        return MIN_AGREEMENT
    return None


def _judgements(
    item: ItemRecord, votes: Sequence[AnnotationRecord], dropped: Dropped
) -> list[Preference]:
    pairs = []
    for vote in votes:
        if vote.choice not in DECISIVE:
            dropped.annotation(NON_DECISIVE)
            continue
        meta = {
            "item": item.id,
            "annotator": vote.annotator_id,
            "guideline_version": vote.guideline_version,
            "chosen": vote.choice,
            "strength": vote.strength,
        }
        key = f"{item.key}/{vote.id}"
        pairs.append(_pair(item, vote.choice, key=key, margin=_strength(vote), meta=meta))
    return pairs


def _pair(
    item: ItemRecord, winner: str, *, key: str, margin: float, meta: dict[str, Any]
) -> Preference:
    first, second = item.responses
    chosen, rejected = (first, second) if winner == "a" else (second, first)
    return Preference(key, item.prompt, chosen, rejected, margin, meta)


def _strength(vote: AnnotationRecord) -> float:
    # A judgement stored without a strength counts as the weakest one, "slightly better".
    return float(vote.strength or 1)


# SFT ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SftPolicy:
    min_rating: int
    blocking_flags: frozenset[str] = frozenset()
    all_responses: bool = False

    def rules(self, *, labeled: bool) -> tuple[str, ...]:
        """Annotation rules: KTO (`labeled`) keeps low ratings as undesirable examples."""
        if labeled:
            return (BLOCKING_FLAG, UNRATED)
        return (BLOCKING_FLAG, UNRATED, MIN_RATING, *(() if self.all_responses else (NOT_BEST,)))


def completions(
    item: ItemRecord, annotations: Sequence[AnnotationRecord], policy: SftPolicy, dropped: Dropped
) -> list[Completion]:
    """Accepted responses: the best-rated one (ties: reviewer-accepted, then the newest), or
    all of them; a reviewer's rejection or corrected response decides first."""
    review = item.review
    if review is not None and review.decision in (REJECT, ADJUDICATE):
        return _review_completions(item, annotations, review, dropped, key=item.key)
    accepted = []
    for annotation in _not_rejected(annotations, dropped):
        rule = _unusable(annotation, policy) or _below(annotation, policy)
        if rule is None:
            accepted.append(annotation)
        else:
            dropped.annotation(rule)
    if accepted and not policy.all_responses:
        best = max(accepted, key=lambda a: (a.rating or 0, a.verdict is True, a.created_at, a.id))
        dropped.annotation(NOT_BEST, len(accepted) - 1)
        return [_completion(item, best, item.key, {"accepted": len(accepted)})]
    extra = {"accepted": len(accepted)}
    return [_completion(item, a, f"{item.key}/{a.id}", extra) for a in accepted]


def labeled_completions(
    item: ItemRecord, annotations: Sequence[AnnotationRecord], policy: SftPolicy, dropped: Dropped
) -> list[Completion]:
    """KTO rows: every usable response, desirable when rated at least `min_rating`; a reviewer's
    rejection or corrected response decides first."""
    review = item.review
    if review is not None and review.decision in (REJECT, ADJUDICATE):
        key = f"{item.key}/review"
        return _review_completions(item, annotations, review, dropped, key=key)
    rows = []
    for annotation in _not_rejected(annotations, dropped):
        rule = _unusable(annotation, policy)
        if rule is not None:
            dropped.annotation(rule)
            continue
        desirable = _below(annotation, policy) is None
        key = f"{item.key}/{annotation.id}"
        rows.append(_completion(item, annotation, key, {}, desirable=desirable))
    return rows


def _unusable(annotation: AnnotationRecord, policy: SftPolicy) -> str | None:
    # Blocking flags come first: a flagged response (unsafe, PII...) is never exported,
    # not even as a negative example, whatever its rating.
    if policy.blocking_flags.intersection(annotation.flags):
        return BLOCKING_FLAG
    return UNRATED if annotation.rating is None else None


def _below(annotation: AnnotationRecord, policy: SftPolicy) -> str | None:
    return MIN_RATING if (annotation.rating or 0) < policy.min_rating else None


def _completion(
    item: ItemRecord,
    annotation: AnnotationRecord,
    key: str,
    extra: dict[str, Any],
    *,
    desirable: bool = True,
) -> Completion:
    meta = {
        "item": item.id,
        "annotator": annotation.annotator_id,
        "guideline_version": annotation.guideline_version,
        "rating": annotation.rating,
        **extra,
    }
    return Completion(key, item.prompt, annotation.response_text, meta, desirable)


def _not_rejected(
    annotations: Sequence[AnnotationRecord], dropped: Dropped
) -> list[AnnotationRecord]:
    """Leave out the responses a reviewer rejected one by one (the item was accepted)."""
    kept = [annotation for annotation in annotations if annotation.verdict is not False]
    if len(kept) < len(annotations):
        dropped.annotation(REVIEW_REJECTED, len(annotations) - len(kept))
    return kept


def _review_completions(
    item: ItemRecord,
    annotations: Sequence[AnnotationRecord],
    review: ReviewRecord,
    dropped: Dropped,
    *,
    key: str,
) -> list[Completion]:
    """A rejected item gives nothing; an adjudicated one its corrected response alone."""
    if review.decision == REJECT:
        dropped.annotation(REVIEW_REJECTED, len(annotations))
        return []
    dropped.annotation(REVIEW_REPLACED, len(annotations))
    meta = {"item": item.id, "adjudicated": True, "reviewer": review.reviewer_id}
    return [Completion(key, item.prompt, review.response_text, meta)]
