"""Proof that training learns: the real exporter's files in, better held-out numbers out.

Both tests build a project in the database, run the real `export` (with a 25% test split by
prompt group, as `manage.py export --split test=0.25` does), and train the tiny model on CPU.

DPO: in every pair the chosen answer is made of words from THINGS and the rejected one of
number words, with the same number of tokens on both sides (each word, as the answer's first
word or after a space, is the same number of tokens in the tiny tokenizer, so the summed
log-probabilities are not decided by length). The seeded base model happens to prefer the
number words (base preference accuracy 0.26 on this test split, below chance); the adapter
must turn that around: held-out preference accuracy >= 0.9 (it reaches 1.0 with seed 0).

SFT: answers follow one template ("The answer is <word>.") that the random base model cannot
know; the held-out loss on assistant tokens must fall below the base model's by at least 0.5
nat (seed 0: 6.95, about log(1024), down to 6.24). It cannot fall much further: the random
output layer's weights (std 0.02) bound every logit near 1, and LoRA does not touch it (TRL
refuses an adapter on lm_head), so a tiny random model can only shift its guesses a little.
"""

import random

import pytest

from finetune.training import LoraSettings, TrainJob, TrainSettings, train
from labeling.models import Item
from tests.exports.builders import annotators, answer, export, vote
from tests.factories import ItemFactory, PairwiseProjectFactory, ProjectFactory, ResponseFactory

pytestmark = pytest.mark.django_db

THINGS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "river", "code"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
LORA = LoraSettings(rank=8, alpha=16, dropout=0.0)


def preference_project(pairs: int, seed: int):
    """One judge; the chosen answer sits at a random position, as imported data would."""
    rng = random.Random(seed)
    project = PairwiseProjectFactory(slug="learn-dpo", overlap=1)
    (judge,) = annotators("judge")
    for number in range(pairs):
        words = rng.randint(2, 3)
        good = " ".join(rng.sample(THINGS, words))
        bad = " ".join(rng.sample(NUMBERS, words))
        first = rng.random() < 0.5
        item = ItemFactory(project=project, external_id=f"p{number}", prompt=_prompt(number, words))
        ResponseFactory(item=item, position=0, text=good if first else bad)
        ResponseFactory(item=item, position=1, text=bad if first else good)
        vote(item, judge, "a" if first else "b", minutes=number)
    return project


def sft_project(items: int, seed: int):
    rng = random.Random(seed)
    project = ProjectFactory(slug="learn-sft")
    (writer,) = annotators("writer")
    for number in range(items):
        item: Item = ItemFactory(
            project=project, external_id=f"s{number}", prompt=_prompt(number, 1)
        )
        answer(item, writer, f"The answer is {rng.choice(THINGS)}.", rating=5, minutes=number)
    return project


def _prompt(number: int, words: int) -> str:
    return f"Request {number}: name {words} words."


def run(tmp_path, model, method: str, **settings) -> dict:
    folder = tmp_path / "export"
    job = TrainJob(
        method=method,
        base_model=model,
        train_file=folder / "train.jsonl",
        test_file=folder / "test.jsonl",
        output_dir=tmp_path / "run",
        lora=LORA,
        settings=TrainSettings(max_length=64, batch_size=8, seed=0, **settings),
    )
    return train(job, lambda point: None, lambda: False).metrics


def test_dpo_learns_a_held_out_preference(tiny_model_dir, tmp_path):
    project = preference_project(160, seed=0)
    export(project, tmp_path / "export", "dpo", splits=(("test", 0.25),))

    metrics = run(tmp_path, tiny_model_dir, "dpo", epochs=2.0, learning_rate=1e-2)

    assert metrics["rows"]["train"] + metrics["rows"]["test"] == 160
    assert metrics["eval"]["base_preference_accuracy"] <= 0.5
    assert metrics["eval"]["preference_accuracy"] >= 0.9
    assert metrics["eval"]["rewards/accuracies"] >= 0.9


def test_sft_lowers_held_out_loss(tiny_model_dir, tmp_path):
    project = sft_project(120, seed=0)
    export(project, tmp_path / "export", "sft", splits=(("test", 0.25),))

    metrics = run(tmp_path, tiny_model_dir, "sft", epochs=3.0, learning_rate=3e-2)

    assert metrics["rows"]["train"] + metrics["rows"]["test"] == 120
    assert metrics["eval"]["loss"] <= metrics["eval"]["base_loss"] - 0.5
