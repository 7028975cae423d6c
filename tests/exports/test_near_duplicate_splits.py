"""Near duplicates found by a dedup run never straddle train and test."""

from django.core.management import call_command

from curation.dedup.selectors import near_duplicate_representatives
from exports.splits import Splitter, prompt_group
from tests.exports.builders import annotators, export, pair_item, rows, vote
from tests.factories import PairwiseProjectFactory

PROMPT = (
    "please explain in plain words how a low rank adapter changes the weights of a large "
    "language model during finetuning and why it needs so much less memory than training "
    "every parameter of the network from the start with the full optimizer state kept"
)


def twins(splitter: Splitter) -> tuple[str, str]:
    """Two prompts one word apart (near duplicates) that their own hashes split apart."""
    for n in range(200):
        first = f"{PROMPT} case{n} today"
        second = f"{PROMPT} case{n} tonight"
        groups = [prompt_group([{"role": "user", "content": p}]) for p in (first, second)]
        if splitter.split_of(groups[0]) != splitter.split_of(groups[1]):
            return first, second
    raise AssertionError("no pair of prompts splits apart")


def split_of_each(directory) -> dict[str, str]:
    return {
        row["id"]: split
        for split in ("train", "test")
        for row in rows(directory / f"{split}.jsonl")
    }


def test_near_duplicates_share_a_split_once_a_dedup_run_grouped_them(db, tmp_path):
    project = PairwiseProjectFactory(slug="near", overlap=1)
    first, second = twins(Splitter(project.slug, (("test", 0.5),)))
    (judge,) = annotators("judge")
    items = [pair_item(project, key, prompt) for key, prompt in (("x", first), ("y", second))]
    for item in items:
        vote(item, judge, "a")

    export(project, tmp_path / "before/", splits=(("test", 0.5),))
    before = split_of_each(tmp_path / "before")
    call_command("dedup", "--project", project.slug)
    export(project, tmp_path / "after/", splits=(("test", 0.5),))
    after = split_of_each(tmp_path / "after")

    assert before["x"] != before["y"]  # their own prompts split them apart
    assert near_duplicate_representatives(project.pk) == {
        items[0].pk: items[0].pk,
        items[1].pk: items[0].pk,
    }
    assert after["x"] == after["y"]
