"""Aggregation policies over plain records: exact rows and exact drop counts. No database."""

from datetime import UTC, datetime, timedelta

import pytest

from exports import policies
from exports.policies import Dropped, Filters, PairPolicy, SftPolicy
from exports.rows import AnnotationRecord, ItemRecord

USER = {"role": "user", "content": "Which is better?"}
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(number: int, **fields) -> AnnotationRecord:
    defaults = {
        "id": number,
        "annotator_id": 100 + number,
        "guideline_version": 1,
        "created_at": T0 + timedelta(minutes=number),
    }
    return AnnotationRecord(**(defaults | fields))


def votes(*choices: str, strengths: tuple[int | None, ...] = ()) -> tuple[AnnotationRecord, ...]:
    strengths = strengths or (2,) * len(choices)
    return tuple(
        record(n, choice=c, strength=s)
        for n, (c, s) in enumerate(zip(choices, strengths, strict=True), 1)
    )


def item(annotations=(), responses=("answer A", "answer B")) -> ItemRecord:
    return ItemRecord(9, "q-9", (USER,), "group", responses=responses, annotations=annotations)


def decide(choices: tuple[str, ...], policy: PairPolicy, dropped: Dropped | None = None, **kw):
    given = votes(*choices, **kw)
    return policies.preferences(item(given), given, policy, dropped or Dropped())


def test_majority_picks_the_response_most_votes_chose():
    dropped = Dropped()
    [pair] = decide(("b", "a", "b"), PairPolicy(min_votes=3), dropped)
    assert (pair.key, pair.chosen, pair.rejected, pair.margin) == (
        "q-9",
        "answer B",
        "answer A",
        2.0,
    )
    assert pair.meta == {
        "item": 9,
        "votes": {"a": 1, "b": 2, "tie": 0, "both_bad": 0},
        "agreement": 0.6667,
        "chosen": "b",
        "strength": 2.0,
    }
    assert dropped.as_dict() == {"annotations": {"non_decisive": 0}, "items": {}}


def test_margin_is_the_mean_strength_of_the_winning_votes():
    [pair] = decide(("a", "a", "b"), PairPolicy(min_votes=3), strengths=(3, 2, 1))
    assert pair.margin == 2.5
    assert pair.meta["strength"] == 2.5


def test_missing_strength_counts_as_slightly_better():
    [pair] = decide(("a",), PairPolicy(min_votes=1), strengths=(None,))
    assert pair.margin == 1.0


def test_too_few_votes_drop_the_item():
    dropped = Dropped()
    assert decide(("a", "a"), PairPolicy(min_votes=3), dropped) == []
    assert dropped.items == {"min_votes": 1}


def test_as_many_votes_for_a_as_for_b_give_no_pair():
    dropped = Dropped()
    assert decide(("a", "b"), PairPolicy(min_votes=2), dropped) == []
    assert decide(("tie", "both_bad"), PairPolicy(min_votes=2), dropped) == []
    assert dropped.items == {"no_majority": 2}


def test_min_agreement_is_a_share_of_the_counted_votes():
    dropped = Dropped()
    assert decide(("a", "a", "b"), PairPolicy(min_votes=3, min_agreement=0.7), dropped) == []
    assert dropped.items == {"min_agreement": 1}
    [pair] = decide(("a", "a", "b"), PairPolicy(min_votes=3, min_agreement=0.66))
    assert pair.meta["agreement"] == 0.6667


def test_ties_excluded_by_default_are_not_counted_as_votes():
    dropped = Dropped()
    [pair] = decide(("a", "tie", "both_bad", "a"), PairPolicy(min_votes=2), dropped)
    assert pair.meta["agreement"] == 1.0
    assert pair.meta["votes"] == {"a": 2, "b": 0, "tie": 1, "both_bad": 1}
    assert dropped.annotations == {"non_decisive": 2}


def test_excluded_ties_count_as_judgements_but_not_in_the_majority():
    dropped = Dropped()
    [pair] = decide(("a", "tie", "tie"), PairPolicy(min_votes=3), dropped)
    assert (pair.meta["chosen"], pair.meta["agreement"]) == ("a", 1.0)
    assert (dropped.annotations, dropped.items) == ({"non_decisive": 2}, {})


def test_ties_counted_as_half_lower_the_agreement():
    policy = PairPolicy(min_votes=3, ties=policies.TIES_COUNT_AS_HALF)
    [pair] = decide(("a", "a", "tie"), policy)
    assert pair.meta["agreement"] == 0.8333  # (2 + 0.5) / 3
    dropped = Dropped()
    assert decide(("a", "b", "tie"), policy, dropped) == []
    assert dropped.items == {"no_majority": 1}


def test_ties_counted_as_half_can_fail_min_agreement():
    policy = PairPolicy(min_votes=3, ties=policies.TIES_COUNT_AS_HALF, min_agreement=0.7)
    dropped = Dropped()
    assert decide(("a", "tie", "both_bad"), policy, dropped) == []  # (1 + 1) / 3 = 0.67
    assert dropped.items == {"min_agreement": 1}


def test_drop_item_leaves_out_any_item_with_a_tie_or_both_bad():
    policy = PairPolicy(min_votes=1, ties=policies.TIES_DROP_ITEM)
    dropped = Dropped()
    assert decide(("a", "a", "both_bad"), policy, dropped) == []
    assert dropped.items == {"non_decisive_in_item": 1}
    assert len(decide(("a", "a"), policy)) == 1


def test_per_annotator_emits_each_decisive_judgement():
    dropped = Dropped()
    policy = PairPolicy(min_votes=3, per_annotator=True)
    pairs = decide(("a", "b", "tie"), policy, dropped, strengths=(3, 1, None))
    assert [(p.key, p.chosen, p.margin) for p in pairs] == [
        ("q-9/1", "answer A", 3.0),
        ("q-9/2", "answer B", 1.0),
    ]
    assert pairs[0].meta == {
        "item": 9,
        "annotator": 101,
        "guideline_version": 1,
        "chosen": "a",
        "strength": 3,
    }
    assert dropped.annotations == {"non_decisive": 1}
    assert dropped.items == {}  # no vote thresholds: min_votes does not apply


def test_an_item_without_two_responses_is_left_out():
    dropped = Dropped()
    given = votes("a")
    lone = item(given, responses=("only one",))
    assert policies.preferences(lone, given, PairPolicy(min_votes=1), dropped) == []
    assert dropped.items == {"missing_responses": 1}


def test_pair_policy_lists_the_rules_it_checks():
    assert PairPolicy(min_votes=2).rules() == (
        ("non_decisive",),
        ("missing_responses", "min_votes", "no_majority", "min_agreement"),
    )
    drop_item = PairPolicy(min_votes=2, ties=policies.TIES_DROP_ITEM, per_annotator=True)
    assert drop_item.rules() == ((), ("missing_responses", "non_decisive_in_item"))


# Filters ------------------------------------------------------------------------------------


def test_filters_drop_by_first_matching_rule():
    given = (
        record(1, annotator_id=5),  # excluded annotator (also too old: counted once)
        record(2, created_at=T0 - timedelta(days=1)),  # before since
        record(3, guideline_version=2),  # other guideline version
        record(4, guideline_version=None),  # no guideline at all
        record(5),  # kept
    )
    filters = Filters(since=T0, guideline_version=1, excluded_annotators=frozenset({5}))
    dropped = Dropped()
    kept = policies.filter_annotations(given, filters, dropped)
    assert [a.id for a in kept] == [5]
    assert dropped.annotations == {"excluded_annotator": 1, "since": 1, "guideline_version": 2}


def test_since_keeps_annotations_made_exactly_then():
    kept = policies.filter_annotations((record(0),), Filters(since=T0), Dropped())
    assert len(kept) == 1


def test_filters_list_only_the_rules_set():
    assert Filters().rules() == ("item_status",)
    assert Filters(since=T0, excluded_annotators=frozenset({1})).rules() == (
        "item_status",
        "excluded_annotator",
        "since",
    )


# SFT ----------------------------------------------------------------------------------------


def answers(*specs: tuple[int | None, tuple[str, ...]]) -> tuple[AnnotationRecord, ...]:
    return tuple(
        record(n, rating=rating, flags=flags, response_text=f"answer {n}")
        for n, (rating, flags) in enumerate(specs, 1)
    )


SFT = SftPolicy(min_rating=4, blocking_flags=frozenset({"unsafe", "pii"}))


def test_sft_keeps_the_best_rated_accepted_response():
    given = answers((4, ()), (5, ()), (5, ("unsafe",)), (2, ()), (None, ()))
    dropped = Dropped()
    [row] = policies.completions(item(given), given, SFT, dropped)
    assert (row.key, row.text, row.desirable) == ("q-9", "answer 2", True)
    assert row.meta == {
        "item": 9,
        "annotator": 102,
        "guideline_version": 1,
        "rating": 5,
        "accepted": 2,
    }
    assert dropped.annotations == {"blocking_flag": 1, "min_rating": 1, "unrated": 1, "not_best": 1}


def test_sft_equal_ratings_go_to_the_newest():
    given = answers((5, ()), (5, ()), (4, ()))
    [row] = policies.completions(item(given), given, SFT, Dropped())
    assert row.text == "answer 2"  # created a minute after answer 1


def test_sft_all_responses_keeps_every_accepted_one():
    given = answers((5, ()), (4, ("factual_error",)), (3, ()))
    policy = SftPolicy(min_rating=4, blocking_flags=frozenset({"unsafe"}), all_responses=True)
    rows = policies.completions(item(given), given, policy, Dropped())
    assert [(r.key, r.text, r.meta["accepted"]) for r in rows] == [
        ("q-9/1", "answer 1", 2),
        ("q-9/2", "answer 2", 2),
    ]


def test_sft_blocking_flags_win_over_a_top_rating():
    given = answers((5, ("pii",)))
    dropped = Dropped()
    assert policies.completions(item(given), given, SFT, dropped) == []
    assert dropped.annotations == {"blocking_flag": 1}


def test_kto_on_sft_labels_by_the_rating_threshold():
    given = answers((5, ()), (3, ()), (None, ()), (5, ("unsafe",)))
    dropped = Dropped()
    rows = policies.labeled_completions(item(given), given, SFT, dropped)
    assert [(r.key, r.desirable) for r in rows] == [("q-9/1", True), ("q-9/2", False)]
    assert dropped.annotations == {"unrated": 1, "blocking_flag": 1}


@pytest.mark.parametrize(
    ("labeled", "all_responses", "rules"),
    [
        (False, False, ("blocking_flag", "unrated", "min_rating", "not_best")),
        (False, True, ("blocking_flag", "unrated", "min_rating")),
        (True, False, ("blocking_flag", "unrated")),
    ],
)
def test_sft_policy_lists_the_rules_it_checks(labeled, all_responses, rules):
    policy = SftPolicy(min_rating=4, all_responses=all_responses)
    assert policy.rules(labeled=labeled) == rules


def test_dropped_starts_listed_rules_at_zero_in_order():
    dropped = Dropped.for_rules(("item_status", "since"), ("min_votes",))
    dropped.annotation("since", 2)
    assert dropped.as_dict() == {
        "annotations": {"item_status": 0, "since": 2},
        "items": {"min_votes": 0},
    }
