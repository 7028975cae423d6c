"""Every export format that maps to a TRL trainer, through the real exporter and the trainer.

A small project is built in the database (tests/exports/builders.py), exported with the real
`run_export`, loaded with `datasets.load_dataset("json", ...)` as a user would, and handed to
the matching trainer on the tiny model: constructing the trainer runs TRL's own dataset
preparation (chat template, tokenization, masks), which is what these tests check.

| format | trainer |
|---|---|
| sft (conversational), openai-sft | SFTTrainer, assistant-only loss |
| sft --style standard | SFTTrainer, completion-only loss |
| dpo (both styles) | DPOTrainer |
| kto (both styles) | KTOTrainer (still in trl.trainer in 1.16; trl.experimental.kto too) |
| rm (both styles) | RewardTrainer (the `margin` column is read as is) |
| openai-dpo | none in TRL: finetune.training.data renames it to prompt/chosen/rejected |
"""

import pytest

from finetune.training import data
from tests.exports.builders import annotators, answer, export, pair_item, vote
from tests.factories import ItemFactory, PairwiseProjectFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def pairs():
    project = PairwiseProjectFactory(slug="rt-pairs", overlap=1)
    (judge,) = annotators("judge")
    for number, choice in enumerate("abab"):
        vote(pair_item(project, f"q{number}", f"Question {number}?"), judge, choice, minutes=number)
    return project


@pytest.fixture
def answers():
    project = ProjectFactory(slug="rt-sft")
    (writer,) = annotators("writer")
    for number in range(3):
        item = ItemFactory(project=project, external_id=f"s{number}", prompt=f"Task {number}.")
        answer(item, writer, f"Done {number}.", rating=5, minutes=number)
    return project


def load(tmp_path, project, fmt: str, **options):
    from datasets import load_dataset

    path = tmp_path / f"{fmt}-{options.get('style', 'default')}.jsonl"
    export(project, path, fmt, **options)
    return load_dataset("json", data_files=str(path), split="train")


def args(tmp_path, config_class, **extra):
    return config_class(
        output_dir=str(tmp_path / "trainer"),
        report_to="none",
        max_steps=1,
        use_cpu=True,  # TRL defaults to bf16, which it refuses on a CPU unless told
        bf16=False,
        **extra,
    )


def model(tiny_model_dir, kind: str = "causal"):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if kind == "reward":
        return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("fmt", ["sft", "openai-sft"])
def test_conversational_sft_trains_on_assistant_tokens_only(
    tmp_path, answers, tiny_model_dir, tokenizer, fmt
):
    from trl import SFTConfig, SFTTrainer

    rows = load(tmp_path, answers, fmt)
    config = args(tmp_path, SFTConfig, assistant_only_loss=True)
    trainer = SFTTrainer(
        model(tiny_model_dir), config, train_dataset=rows, processing_class=tokenizer
    )

    prepared = trainer.train_dataset
    assert prepared.num_rows == 3
    assert {"input_ids", "labels"} <= set(prepared.column_names)  # masks folded into labels
    first = prepared[0]
    trained = [
        t for t, label in zip(first["input_ids"], first["labels"], strict=True) if label != -100
    ]
    assert tokenizer.decode(trained) == "Done 0.<|eot_id|>"
    assert tokenizer.decode(first["input_ids"]).startswith(
        "<|begin_of_text|><|start_header_id|>user"
    )


def test_standard_sft_trains_on_the_completion(tmp_path, answers, tiny_model_dir, tokenizer):
    from trl import SFTConfig, SFTTrainer

    rows = load(tmp_path, answers, "sft", style="standard")
    assert sorted(rows.column_names) == ["completion", "id", "meta", "prompt"]
    trainer = SFTTrainer(
        model(tiny_model_dir),
        args(tmp_path, SFTConfig),
        train_dataset=rows,
        processing_class=tokenizer,
    )
    first = trainer.train_dataset[0]
    assert trainer.train_dataset.num_rows == 3
    assert tokenizer.decode(first["input_ids"]) == "Task 0.Done 0.<|eot_id|>"
    trained = [
        t for t, label in zip(first["input_ids"], first["labels"], strict=True) if label != -100
    ]
    assert tokenizer.decode(trained) == "Done 0.<|eot_id|>"


@pytest.mark.parametrize("style", ["conversational", "standard"])
def test_dpo_rows_tokenize_into_prompt_chosen_rejected(
    tmp_path, pairs, tiny_model_dir, tokenizer, style
):
    from trl import DPOConfig, DPOTrainer

    rows = load(tmp_path, pairs, "dpo", style=style)
    assert sorted(rows.column_names) == ["chosen", "id", "meta", "prompt", "rejected"]
    trainer = DPOTrainer(
        model(tiny_model_dir), args=args(tmp_path, DPOConfig), train_dataset=rows,
        processing_class=tokenizer,
    )  # fmt: skip
    first = trainer.train_dataset[0]
    assert trainer.train_dataset.num_rows == 4
    prompt = tokenizer.decode(first["prompt_ids"])
    if style == "conversational":
        assert prompt == (
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\nQuestion 0?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n"
        )
    else:
        assert prompt == "Question 0?"
    # q0 was judged "a": the chosen answer is response A.
    assert tokenizer.decode(first["chosen_ids"]) == "A: Question 0?<|eot_id|>"
    assert tokenizer.decode(first["rejected_ids"]) == "B: Question 0?<|eot_id|>"


@pytest.mark.parametrize("style", ["conversational", "standard"])
def test_kto_rows_from_pairs_tokenize_with_labels(
    tmp_path, pairs, tiny_model_dir, tokenizer, style
):
    from trl import KTOConfig, KTOTrainer

    rows = load(tmp_path, pairs, "kto", style=style)
    assert sorted(rows.column_names) == ["completion", "id", "label", "meta", "prompt"]
    assert rows["label"] == [True, False] * 4
    trainer = KTOTrainer(
        model(tiny_model_dir), args=args(tmp_path, KTOConfig, per_device_train_batch_size=4),
        train_dataset=rows, processing_class=tokenizer,
    )  # fmt: skip
    assert trainer.train_dataset.num_rows == 8
    assert trainer.train_dataset["label"] == [True, False] * 4


@pytest.mark.parametrize("style", ["conversational", "standard"])
def test_rm_rows_keep_their_margin(tmp_path, pairs, tiny_model_dir, tokenizer, style):
    from trl import RewardConfig, RewardTrainer

    rows = load(tmp_path, pairs, "rm", style=style)
    assert sorted(rows.column_names) == ["chosen", "id", "margin", "meta", "prompt", "rejected"]
    trainer = RewardTrainer(
        model(tiny_model_dir, "reward"), args=args(tmp_path, RewardConfig), train_dataset=rows,
        processing_class=tokenizer,
    )  # fmt: skip
    prepared = trainer.train_dataset
    assert prepared.num_rows == 4
    assert prepared["margin"] == [2.0] * 4
    assert {"chosen_ids", "rejected_ids"} <= set(prepared.column_names)


def test_openai_dpo_is_renamed_for_the_dpo_trainer(tmp_path, pairs, tiny_model_dir, tokenizer):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = load(tmp_path, pairs, "openai-dpo")
    assert sorted(rows.column_names) == ["input", "non_preferred_output", "preferred_output"]
    renamed = Dataset.from_list([data.dpo_row(row) for row in rows])
    trainer = DPOTrainer(
        model(tiny_model_dir), args=args(tmp_path, DPOConfig), train_dataset=renamed,
        processing_class=tokenizer,
    )  # fmt: skip
    assert trainer.train_dataset.num_rows == 4
    assert tokenizer.decode(trainer.train_dataset[1]["chosen_ids"]) == "B: Question 1?<|eot_id|>"
