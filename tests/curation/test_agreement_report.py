"""Reports computed from stored annotations: exact values on small hand-built projects.

The expected values are worked out by hand in the comments (coincidence matrices o, value
counts n_c, alpha = 1 - (n - 1) * sum(o * d) / sum(n_c n_k d)).
"""

import krippendorff
import numpy as np
import pytest

from curation.agreement import services
from labeling.models import Role
from tests.curation.agreement_builders import vote
from tests.factories import (
    GuidelineFactory,
    ItemFactory,
    MembershipFactory,
    PairwiseProjectFactory,
    ProjectFactory,
    UserFactory,
    pairwise_item,
)

# (alice, bob, carol) per item, in stored terms; None = no vote.
CHOICES = [("a", "a", "a"), ("a", "b", "a"), ("tie", "tie", "both_bad"), ("b", "b", "b")]


@pytest.fixture
def trio(db):
    project = PairwiseProjectFactory(slug="trio", overlap=3, criteria=["helpfulness"])
    people = [UserFactory(username=name) for name in ("alice", "bob", "carol")]
    for person in people:
        MembershipFactory(user=person, project=project, role=Role.ANNOTATOR)
    return project, people


@pytest.fixture
def pairwise_report(trio):
    project, people = trio
    v1, v2 = (
        GuidelineFactory(project=project, number=1),
        GuidelineFactory(project=project, number=2),
    )
    times = {"alice": [1000, 3000, 2000, 4000], "bob": [500] * 4, "carol": [10, 20, 30, 40]}
    for index, row in enumerate(CHOICES):
        item = pairwise_item(project)
        for person, choice in zip(people, row, strict=True):
            vote(
                project, item, person, choice=choice,
                swapped=person.username == "alice" and index == 1,
                criteria={} if choice == "both_bad" else {"helpfulness": choice},
                guideline=v2 if person.username == "carol" else v1,
                time_spent_ms=times[person.username][index],
                day=0 if index < 3 else 2,
            )  # fmt: skip
    return services.refresh(project=project).data


def test_pairwise_overall_coefficients(pairwise_report):
    overall = pairwise_report["overall"]

    # Choices: o_aa=4, o_ab=o_ba=1, o_bb=3, o_tt=1, o_t,bb=o_bb,t=1; n = 12 with n_a=5, n_b=4,
    # n_tie=2, n_both_bad=1: alpha = 1 - 11 * 4 / (144 - 46) = 27/49.
    assert overall["alpha_nominal"] == pytest.approx(27 / 49, abs=1e-12)
    # Signed strength: a=+2, b=-2, tie=0, both_bad missing; n_2=5, n_-2=4, n_0=2:
    # alpha = 1 - 10 * (2 * 16) / (2 * (5*4*16 + 5*2*4 + 4*2*4)) = 29/49.
    assert overall["alpha_interval"] == pytest.approx(29 / 49, abs=1e-12)
    # P_i = 1, 1/3, 1/3, 1; P_e = 46/144: (2/3 - 46/144) / (1 - 46/144) = 25/49.
    assert overall["fleiss_kappa"] == pytest.approx(25 / 49, abs=1e-12)
    assert overall["fleiss_items"] == 4
    assert overall["percent_agreement"] == pytest.approx(2 / 3, abs=1e-12)
    assert overall["tie_rate"] == pytest.approx(2 / 12)
    assert overall["both_bad_rate"] == pytest.approx(1 / 12)
    # Criterion: carol's both_bad has none; n_a=5, n_b=4, n_tie=2 (n = 11), 2 disagreeing:
    # alpha = 1 - 10 * 2 / (121 - 45) = 14/19.
    assert overall["criteria"] == {"helpfulness": pytest.approx(14 / 19, abs=1e-12)}
    assert (overall["annotations"], overall["items"], overall["pairable_items"]) == (12, 4, 4)


def test_pairwise_by_guideline_version(pairwise_report):
    v1, v2 = pairwise_report["by_guideline"]

    # v1 is alice and bob: n_a=3, n_b=3, n_tie=2, 2 disagreeing: 1 - 7 * 2 / (64 - 22) = 2/3.
    assert (v1["version"], v1["annotations"]) == (1, 8)
    assert v1["alpha_nominal"] == pytest.approx(2 / 3, abs=1e-12)
    assert v1["fleiss_kappa"] is None  # no item has all 3 votes under v1
    # v2 is carol alone: nothing to agree with.
    assert (v2["version"], v2["annotations"], v2["pairable_items"]) == (2, 4, 0)
    assert v2["alpha_nominal"] is None
    assert v2["percent_agreement"] is None


def test_per_annotator_rows(pairwise_report):
    rows = {row["name"]: row for row in pairwise_report["per_annotator"]}

    # alice: items 1 and 4 have a majority of the others (both agree with her); 2 and 3 do not.
    assert rows["alice"] | {"id": 0} == {
        "id": 0, "name": "alice", "items": 4, "majority_items": 2,
        "agreement_with_majority": 1.0, "median_time_ms": 2500.0,
        "gold_accuracy": None, "gold_items": 0,
        # a (not swapped) = left; a swapped = right; tie: no side; b = right.
        "left": 1, "right": 2, "left_rate": pytest.approx(1 / 3), "position_p_value": 1.0,
    }  # fmt: skip
    assert rows["bob"]["agreement_with_majority"] == pytest.approx(2 / 3)
    assert (rows["bob"]["left"], rows["bob"]["right"]) == (1, 2)
    assert rows["carol"]["majority_items"] == 3  # item 3: alice and bob both said tie
    assert rows["carol"]["agreement_with_majority"] == pytest.approx(2 / 3)
    assert rows["carol"]["median_time_ms"] == 25.0


def test_distribution_progress_and_pairs(pairwise_report):
    assert pairwise_report["distribution"] == {"a": 5, "b": 4, "tie": 2, "both_bad": 1, "none": 0}
    assert pairwise_report["progress"] == [
        {"date": "2025-03-01", "annotations": 9, "total": 9},
        {"date": "2025-03-03", "annotations": 3, "total": 12},
    ]
    pairs = pairwise_report["pairs"]
    assert [p["name"] for p in pairs["annotators"]] == ["alice", "bob", "carol"]
    assert pairs["shared_items"] == [[0, 4, 4], [4, 0, 4], [4, 4, 0]]
    assert pairs["kappa"] == [[None] * 3] * 3  # 4 shared items < 10


def test_pair_kappa_with_enough_shared_items(trio):
    project, (alice, bob, _) = trio
    alice_votes = ["a"] * 5 + ["b"] * 5
    bob_votes = ["a"] * 4 + ["b"] * 5 + ["a"]
    for first, second in zip(alice_votes, bob_votes, strict=True):
        item = pairwise_item(project)
        vote(project, item, alice, choice=first)
        vote(project, item, bob, choice=second)

    pairs = services.refresh(project=project).data["pairs"]

    # Table [[4, 1], [1, 4]]: p_o = 0.8, p_e = 0.5, kappa = 0.6.
    assert pairs["kappa"][0][1] == pairs["kappa"][1][0] == pytest.approx(0.6, abs=1e-12)
    assert pairs["shared_items"] == [[0, 10], [10, 0]]


@pytest.fixture
def sft_report(db):
    project = ProjectFactory(slug="sft-agree", overlap=2, rating_scale=5)
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    rows = [((5, ["unsafe"]), (4, ["unsafe"])), ((2, []), (2, [])), ((1, ["pii"]), (3, []))]
    for first, second in rows:
        item = ItemFactory(project=project)
        for person, (rating, flags) in ((alice, first), (bob, second)):
            vote(project, item, person, rating=rating, flags=flags, response_text="ok")
    return services.refresh(project=project).data


def test_sft_rating_and_flag_agreement(sft_report):
    overall = sft_report["overall"]

    # Ratings 5/4, 2/2, 1/3: sum o*d = 2*1 + 2*4 = 10; sum n_c n_k d = 130: 1 - 5 * 10 / 130.
    assert overall["alpha_interval"] == pytest.approx(8 / 13, abs=1e-12)
    matrix = np.array([[5, 2, 1], [4, 2, 3]], dtype=float)
    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert overall["alpha_ordinal"] == pytest.approx(reference, abs=1e-12)
    assert overall["percent_agreement"] == pytest.approx(1 / 3)
    assert overall["flags"] == {
        "unsafe": {"alpha": 1.0, "percent_agreement": 1.0, "rate": pytest.approx(1 / 3)},
        # (0,0), (0,0), (1,0): 1 - 5 * 2 / (2 * 5 * 1) = 0.
        "pii": {
            "alpha": 0.0,
            "percent_agreement": pytest.approx(2 / 3),
            "rate": pytest.approx(1 / 6),
        },
        "factual_error": {"alpha": None, "percent_agreement": 1.0, "rate": 0.0},
    }
    assert "left" not in sft_report["per_annotator"][0]
    assert sft_report["distribution"] == {"1": 1, "2": 2, "3": 1, "4": 1, "5": 1, "none": 0}


@pytest.mark.parametrize("seed", range(3))
def test_stored_votes_match_the_reference_packages(trio, seed):
    """The SQL that codes choices must lose nothing: random votes, with gaps, read back."""
    project, people = trio
    rng = np.random.default_rng(seed)
    extra = [UserFactory(username=f"extra{n}") for n in range(2)]
    raters = people + extra
    matrix = np.full((len(raters), 30), np.nan)
    for unit in range(30):
        item = pairwise_item(project)
        for rater, person in enumerate(raters):
            if rng.random() < 0.6:
                code = int(rng.integers(0, 4))
                matrix[rater, unit] = code
                vote(project, item, person, choice=("a", "b", "tie", "both_bad")[code])

    overall = services.refresh(project=project).data["overall"]

    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert overall["alpha_nominal"] == pytest.approx(reference, abs=1e-9)
