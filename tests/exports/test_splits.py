"""Splits: stable, proportional, and exact-duplicate prompts together. No database."""

import pytest

from exports.splits import Splitter, bucket, check_splits, parse_split, prompt_group


def group(text: str, *, system: str | None = None) -> str:
    turns = [{"role": "system", "content": system}] if system else []
    return prompt_group([*turns, {"role": "user", "content": text}])


def test_parse_split_reads_name_and_fraction():
    assert parse_split("test=0.1") == ("test", 0.1)
    assert parse_split(" validation =0.25") == ("validation", 0.25)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("train=0.1", 'not "train"'),
        ("Test=0.1", "lowercase"),
        ("test", "must be a number"),
        ("test=x", "must be a number"),
        ("test=0", "between 0 and 1"),
        ("test=1", "between 0 and 1"),
    ],
)
def test_parse_split_refuses_bad_splits(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_split(text)


def test_check_splits_leaves_room_for_train_and_no_twins():
    check_splits([("test", 0.1), ("validation", 0.1)])
    with pytest.raises(ValueError, match="leave some for train"):
        check_splits([("test", 0.5), ("validation", 0.5)])
    with pytest.raises(ValueError, match="named twice"):
        check_splits([("test", 0.1), ("test", 0.2)])


def test_bucket_is_a_fixed_function_of_project_and_prompt():
    # Pinned: a change here would move items between splits in every project's re-export.
    assert bucket("pair-demo", "abc") == 0.5057995367463868
    assert bucket("pair-demo", "abc") != bucket("other-project", "abc")


def test_splitter_takes_about_the_fraction_asked():
    splitter = Splitter("demo", (("test", 0.1), ("validation", 0.2)))
    chosen = [splitter.split_of(group(f"prompt {n}")) for n in range(2000)]
    assert splitter.names == ("train", "test", "validation")
    assert 150 < chosen.count("test") < 250
    assert 330 < chosen.count("validation") < 470


def test_adding_a_split_keeps_the_test_items_in_test():
    before = Splitter("demo", (("test", 0.1),))
    after = Splitter("demo", (("test", 0.1), ("validation", 0.1)))
    groups = [group(f"prompt {n}") for n in range(500)]
    test_before = {g for g in groups if before.split_of(g) == "test"}
    assert test_before == {g for g in groups if after.split_of(g) == "test"}


def test_prompts_equal_after_normalization_share_a_group():
    assert group("What is  LoRA?\n") == group("What is LoRA?")
    assert group("What is LoRA?", system="Be brief.") == group("What is LoRA?")
    assert group("What is LoRA?") != group("what is LoRA?")
