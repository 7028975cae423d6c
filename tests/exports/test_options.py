"""Options: defaults filled in from the project, and every option that cannot apply refused."""

from datetime import UTC, datetime

import pytest

from exports.errors import InvalidOptions
from exports.options import ExportOptions, ProjectFacts, default_min_rating, resolve
from exports.policies import Filters, PairPolicy, SftPolicy

PAIRWISE = ProjectFacts("pair-demo", "pairwise", 3, 5, ())
SFT = ProjectFacts("sft-demo", "sft", 1, 5, ("unsafe", "pii"))


def test_pairwise_defaults_come_from_the_project():
    spec = resolve(ExportOptions(format="dpo"), PAIRWISE, frozenset())
    assert spec.pairs == PairPolicy(min_votes=3, min_agreement=0.5, ties="exclude")
    assert (spec.style, spec.bare, spec.sft) == ("conversational", False, None)


def test_sft_defaults_block_every_flag_and_want_above_the_middle():
    spec = resolve(ExportOptions(format="sft"), SFT, frozenset())
    assert spec.sft == SftPolicy(min_rating=4, blocking_flags=frozenset({"unsafe", "pii"}))


@pytest.mark.parametrize(("scale", "expected"), [(2, 2), (3, 3), (4, 3), (5, 4), (10, 6)])
def test_default_min_rating_is_the_lowest_rating_above_the_middle(scale, expected):
    assert default_min_rating(scale) == expected


def test_empty_blocking_flags_block_nothing():
    spec = resolve(ExportOptions(format="sft", blocking_flags=()), SFT, frozenset())
    assert spec.sft is not None
    assert spec.sft.blocking_flags == frozenset()


def test_openai_formats_are_always_bare():
    assert resolve(ExportOptions(format="openai-dpo"), PAIRWISE, frozenset()).bare is True


def test_describe_records_the_resolved_policy_and_filters():
    since = datetime(2025, 1, 31, tzinfo=UTC)
    options = ExportOptions(format="dpo", style="standard", since=since, splits=(("test", 0.1),))
    spec = resolve(options, PAIRWISE, frozenset({7, 3}))
    assert spec.filters == Filters(since, None, frozenset({3, 7}))
    assert spec.describe() == {
        "format": "dpo",
        "style": "standard",
        "bare": False,
        "policy": {"min_votes": 3, "min_agreement": 0.5, "ties": "exclude", "per_annotator": False},
        "filters": {
            "item_status": "active",
            "since": "2025-01-31T00:00:00+00:00",
            "guideline_version": None,
            "excluded_annotators": [3, 7],
        },
        "split": [{"name": "test", "fraction": 0.1}],
    }


def test_raw_has_no_policy_and_no_style():
    described = resolve(ExportOptions(format="raw"), SFT, frozenset()).describe()
    assert (described["policy"], described["style"]) == ({}, None)


@pytest.mark.parametrize(
    ("project", "options", "message"),
    [
        (SFT, ExportOptions(format="dpo"), "--format dpo does not fit a sft project"),
        (PAIRWISE, ExportOptions(format="sft"), "--format sft does not fit a pairwise project"),
        (SFT, ExportOptions(format="sft", min_votes=2), "--min-votes applies to pairwise"),
        (PAIRWISE, ExportOptions(format="dpo", min_rating=4), "--min-rating applies to SFT"),
        (PAIRWISE, ExportOptions(format="raw", ties="exclude"), "--ties does not apply to raw"),
        (PAIRWISE, ExportOptions(format="raw", bare=True), "--bare does not apply to raw"),
        (SFT, ExportOptions(format="kto", all_responses=True), "--all-responses is implied"),
        (SFT, ExportOptions(format="openai-sft", style="standard"), "OpenAI formats are conv"),
        (
            PAIRWISE,
            ExportOptions(format="dpo", per_annotator=True, min_votes=2),
            "--min-votes does not apply with --per-annotator",
        ),
        (
            PAIRWISE,
            ExportOptions(format="dpo", per_annotator=True, ties="count-as-half"),
            "count-as-half needs votes to aggregate",
        ),
        (PAIRWISE, ExportOptions(format="dpo", min_votes=0), "--min-votes must be at least 1"),
        (PAIRWISE, ExportOptions(format="dpo", min_agreement=1.5), "fraction from 0 to 1"),
        (SFT, ExportOptions(format="sft", min_rating=6), "from 1 to 5"),
        (SFT, ExportOptions(format="sft", blocking_flags=("rude",)), "has no flag rude"),
        (SFT, ExportOptions(format="sft", guideline_version=0), "at least 1"),
        (SFT, ExportOptions(format="sft", since=datetime(2025, 1, 31)), "needs a time zone"),  # noqa: DTZ001
        (SFT, ExportOptions(format="sft", splits=(("a", 0.6), ("b", 0.5))), "--split: the"),
    ],
)
def test_options_that_cannot_apply_are_refused(project, options, message):
    with pytest.raises(InvalidOptions, match=message):
        resolve(options, project, frozenset())


def test_every_problem_is_reported_at_once():
    options = ExportOptions(format="sft", min_votes=2, per_annotator=True)
    with pytest.raises(InvalidOptions) as raised:
        resolve(options, SFT, frozenset())
    assert str(raised.value) == (
        "--min-votes applies to pairwise projects only; "
        "--per-annotator applies to pairwise projects only; "
        "--min-votes does not apply with --per-annotator"
    )
