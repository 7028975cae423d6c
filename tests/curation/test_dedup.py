"""Deduplication: shingles and Jaccard (pure), runs (batched, incremental), groups, actions."""

import hashlib

import numpy as np
import pytest

from curation.dedup import lsh, minhash, services
from curation.models import DedupConfig, DedupRun, DuplicateGroup, DuplicatePair, ItemSignature
from labeling.models import Item
from tests.factories import ItemFactory, ResponseFactory

BASE = "the quick brown fox jumps over the lazy dog near the river bank today"
ONE_WORD_AT_END = BASE.replace("today", "tonight")  # 11 of 13 word 3-grams shared
ONE_WORD_INSIDE = BASE.replace("lazy", "sleepy")  # 9 of 15 shared
OTHER = "an entirely different request about baking sourdough bread at home with rye flour"


def word_shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """The reference: normalized words, n at a time, computed the slow obvious way."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def reference_jaccard(a: str, b: str, n: int = 3) -> float:
    left, right = word_shingles(a, n), word_shingles(b, n)
    return len(left & right) / len(left | right)


def similarity(a: str, b: str, mode: str = "word", size: int = 3) -> float:
    shingles = minhash.shingle([a, b], mode=mode, size=size)
    return minhash.jaccard(np.unique(shingles.of(0)), np.unique(shingles.of(1)))


# Pure ----------------------------------------------------------------------------------------


def test_word_jaccard_equals_the_reference_on_hand_built_texts():
    assert similarity(BASE, ONE_WORD_AT_END) == pytest.approx(11 / 13)
    assert similarity(BASE, ONE_WORD_INSIDE) == pytest.approx(9 / 15)
    assert reference_jaccard(BASE, ONE_WORD_AT_END) == pytest.approx(11 / 13)
    assert similarity(BASE, OTHER) == 0.0


def test_normalization_ignores_case_punctuation_and_spacing():
    assert similarity("Hello,  World! How are you?", "hello world how   are you") == 1.0


def test_char_mode_compares_short_prompts_by_character_ngrams():
    left, right = "How do I reset my password?", "how do i reset my pasword"
    grams = lambda s: {s[i : i + 5] for i in range(len(s) - 4)}  # noqa: E731
    a, b = grams("how do i reset my password"), grams("how do i reset my pasword")
    assert similarity(left, right, mode="char", size=5) == pytest.approx(len(a & b) / len(a | b))
    assert similarity(left, right, mode="word", size=3) == pytest.approx(3 / 5)


def test_a_text_shorter_than_one_shingle_is_one_shingle_and_empty_text_none():
    shingles = minhash.shingle(["two words", "", "!!!"], mode="word", size=3)
    assert [len(shingles.of(i)) for i in range(3)] == [1, 0, 0]


def test_signatures_are_the_same_in_any_batch():
    texts = [BASE, OTHER, ONE_WORD_AT_END]
    together = minhash.signatures(minhash.shingle(texts, mode="word", size=3))
    alone = minhash.signatures(minhash.shingle([OTHER], mode="word", size=3))
    assert together.shape == (3, 128)
    assert (together[1] == alone[0]).all()


def test_candidate_pairs_every_pair_in_a_bucket_once():
    keys = np.array([[5, 1], [5, 2], [5, 1], [0, 2], [7, 2]], dtype=np.uint64)
    assert lsh.candidate_pairs(keys).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [1, 4], [3, 4]]
    fresh = np.array([False, False, False, False, True])
    assert lsh.candidate_pairs(keys, fresh).tolist() == [[1, 4], [3, 4]]


def test_star_groups_never_group_two_members_through_a_chain():
    groups = lsh.star_groups([(1, 2, 0.9), (2, 3, 0.85), (1, 3, 0.5), (4, 5, 0.79)], 0.8)
    assert groups == [lsh.Group(1, [(1, 1.0), (2, 0.9)])]


# Runs ----------------------------------------------------------------------------------------


def item(project, prompt: str, external_id: str, content: str | None = None) -> Item:
    digest = hashlib.sha256((content or prompt).encode()).hexdigest()
    return ItemFactory(project=project, prompt=prompt, external_id=external_id, content_hash=digest)


def run(project, **options) -> DedupRun:
    created = DedupRun.objects.create(project=project, trigger="command", **options)
    return services.run_in_process(created)


def report(dedup_run: DedupRun) -> list[tuple[str, str, list[tuple[str, float]]]]:
    rows = []
    for group in dedup_run.groups.order_by("kind", "number"):
        members = group.members.select_related("item").order_by("item_id")
        rows.append(
            (
                group.kind,
                group.representative.external_id,
                [(m.item.external_id, round(m.similarity, 6)) for m in members],
            )
        )
    return rows


@pytest.fixture
def corpus(sft_project):
    return [
        item(sft_project, BASE, "base"),
        item(sft_project, OTHER, "other"),
        item(sft_project, ONE_WORD_AT_END, "end"),
        item(sft_project, ONE_WORD_INSIDE, "inside"),
        item(sft_project, "  " + BASE + "\n", "base-again", content="base again"),
    ]


def test_a_run_groups_near_and_exact_duplicates(corpus, sft_project):
    done = run(sft_project)
    assert (done.status, done.items_to_sign, done.items_signed) == ("succeeded", 5, 5)
    assert report(done) == [
        ("exact_prompt", "base", [("base", 1.0), ("base-again", 1.0)]),
        ("near", "base", [("base", 1.0), ("end", round(11 / 13, 6)), ("base-again", 1.0)]),
    ]
    assert done.message == (
        "1 near-duplicate groups, 1 groups of exact duplicate prompts, 0 of exact duplicate"
        " responses."
    )


@pytest.mark.parametrize(("threshold", "grouped"), [(11 / 13, True), (11 / 13 + 1e-9, False)])
def test_the_threshold_is_inclusive(corpus, sft_project, threshold, grouped):
    DedupConfig.objects.create(project=sft_project, threshold=threshold)
    near = run(sft_project).groups.get(kind="near")
    members = set(near.members.values_list("item__external_id", flat=True))
    assert members == ({"base", "end", "base-again"} if grouped else {"base", "base-again"})


def test_a_lower_threshold_groups_the_inside_change_too(corpus, sft_project):
    DedupConfig.objects.create(project=sft_project, threshold=0.6)
    near = run(sft_project).groups.get(kind="near")
    assert list(near.members.values_list("item__external_id", "similarity")) == [
        ("base", 1.0), ("end", pytest.approx(11 / 13)), ("inside", pytest.approx(0.6)),
        ("base-again", 1.0),
    ]  # fmt: skip


def test_char_mode_groups_short_prompts_that_word_mode_misses(sft_project):
    left = "Can you tell me how to reset the password of my email account?"
    right = "can you tell me how to reset the pasword of my email account"
    item(sft_project, left, "a")
    item(sft_project, right, "b")
    assert similarity(left, right, mode="word") == pytest.approx(8 / 14)
    assert run(sft_project).groups.filter(kind="near").count() == 0
    DedupConfig.objects.create(project=sft_project, mode="char", ngram=5)
    char = round(similarity(left, right, mode="char", size=5), 6)
    normalized = [" ".join(t.lower().rstrip("?").split()) for t in (left, right)]
    grams = [{t[i : i + 5] for i in range(len(t) - 4)} for t in normalized]
    assert (
        char == round(len(grams[0] & grams[1]) / len(grams[0] | grams[1]), 6) == round(53 / 60, 6)
    )
    assert report(run(sft_project)) == [("near", "a", [("a", 1.0), ("b", char)])]


def test_verification_drops_a_candidate_that_is_not_similar(corpus, sft_project):
    done = run(sft_project)
    base, inside = corpus[0].pk, corpus[3].pk
    assert services._verify(done, [(base, inside)]) == []
    assert not DuplicatePair.objects.filter(first=base, second=inside).exists()


def test_exact_duplicate_responses_are_reported(pairwise_project):
    first = item(pairwise_project, "Question one?", "q1")
    second = item(pairwise_project, "Question two, unrelated?", "q2")
    ResponseFactory(item=first, position=0, text="The  same answer.")
    ResponseFactory(item=second, position=1, text="The same answer.")
    ResponseFactory(item=second, position=0, text="Another answer.")
    assert report(run(pairwise_project)) == [("exact_response", "q1", [("q1", 1.0), ("q2", 1.0)])]


def test_incremental_run_signs_only_new_items_and_equals_a_full_run(corpus, sft_project):
    first = run(sft_project)
    late = [
        item(sft_project, BASE + " please", "late"),
        item(sft_project, OTHER.upper() + " ok", "late2"),
    ]
    incremental = run(sft_project)
    assert (first.items_to_sign, incremental.items_to_sign) == (5, 2)
    full = run(sft_project, full=True)
    assert full.items_to_sign == 7
    assert report(incremental) == report(full)
    assert [m for _, rep, members in report(full) for m, _ in members if rep == "base"].count(
        "late"
    ) == 1
    assert late[0].pk in ItemSignature.objects.values_list("item_id", flat=True)


def test_batched_equals_single(corpus, sft_project):
    single = run(sft_project, batch_size=1000)
    batched = run(sft_project, full=True, batch_size=2)
    assert (single.batches, batched.batches) == (1, 3)
    assert report(batched) == report(single)


def test_new_settings_sign_everything_again(corpus, sft_project):
    run(sft_project)
    DedupConfig.objects.create(project=sft_project, threshold=0.9)
    again = run(sft_project)
    assert again.items_to_sign == 5
    assert set(ItemSignature.objects.values_list("fingerprint", flat=True)) == {again.fingerprint}


# Decisions -----------------------------------------------------------------------------------


def statuses(project) -> dict[str, str]:
    return dict(Item.objects.filter(project=project).values_list("external_id", "status"))


def test_keep_oldest_marks_all_but_the_oldest_and_leaves_open_slots(corpus, sft_project):
    done = run(sft_project)
    assert services.keep_oldest(run=done) == 2
    assert statuses(sft_project) == {
        "base": "active", "other": "active", "end": "duplicate", "inside": "active",
        "base-again": "duplicate",
    }  # fmt: skip
    assert set(Item.objects.values_list("open_slots", flat=True)) == {1}
    assert services.keep_oldest(run=done) == 0  # idempotent


def test_mark_and_keep_one_member(corpus, sft_project, annotator):
    end = corpus[2]
    claimable = Item.objects.claimable_by(annotator, project=sft_project)
    assert services.mark_duplicate(project=sft_project, item_ids=[end.pk]) == 1
    assert (statuses(sft_project)["end"], claimable.filter(pk=end.pk).exists()) == (
        "duplicate",
        False,
    )
    assert services.keep(project=sft_project, item_ids=[end.pk]) == 1
    assert (statuses(sft_project)["end"], claimable.filter(pk=end.pk).exists()) == ("active", True)


def test_a_second_start_asks_for_a_rerun_instead(
    corpus, sft_project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = services.start_dedup(project=sft_project, trigger="button")
        second = services.start_dedup(project=sft_project, trigger="import")
    assert second.pk == first.pk
    first.refresh_from_db()
    assert (first.status, first.rerun_requested, DedupRun.objects.count()) == ("queued", True, 1)
    assert len(callbacks) == 2  # plan queued, then queued again by resume: a no-op twice


def test_an_import_starts_a_dedup_run(sft_project, tmp_path, django_capture_on_commit_callbacks):
    from labeling.models import ImportJob
    from labeling.services import imports

    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "i-1", "prompt": "First?"}\n')
    job = ImportJob.objects.create(project=sft_project, filename="items.jsonl", path=str(path))
    with django_capture_on_commit_callbacks():
        imports.run_job(job_id=job.pk)
    assert list(DedupRun.objects.values_list("project__slug", "trigger", "status")) == [
        ("sft-demo", "import", "queued")
    ]
    assert DuplicateGroup.objects.count() == 0


def test_the_beat_resumes_only_stalled_steps(corpus, sft_project, monkeypatch):
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from curation.dedup import tasks
    from curation.models import DedupBatch

    # given a signing run with a pending, a fresh, a stalled and a done batch
    entry = settings.CELERY_BEAT_SCHEDULE["resume-dedup-runs"]
    assert entry["task"] == "curation.dedup.tasks.resume_dedup_runs" == tasks.resume_dedup_runs.name
    live = DedupRun.objects.create(
        project=sft_project, trigger="import", status="signing", batches=4, batches_done=1
    )
    stale = timezone.now() - timedelta(seconds=services.LEASE_SECONDS + 1)
    states = [("pending", None), ("running", timezone.now()), ("running", stale), ("done", stale)]
    batches = [
        DedupBatch.objects.create(
            run=live, number=n, first_item=1, last_item=1, items=1, status=s, claimed_at=at
        )
        for n, (s, at) in enumerate(states)
    ]
    queued: list[tuple[str, int]] = []
    for task in (tasks.plan_dedup, tasks.sign_dedup_batch, tasks.merge_dedup):
        monkeypatch.setattr(task, "delay_on_commit", lambda pk, n=task.name: queued.append((n, pk)))
    # when the beat runs the task
    seen = tasks.resume_dedup_runs()
    # then only the pending and the stalled batch are queued again, and nothing else changed
    sign = "curation.dedup.tasks.sign_dedup_batch"
    assert (seen, queued) == (1, [(sign, batches[0].pk), (sign, batches[2].pk)])
    assert list(DedupBatch.objects.order_by("number").values_list("status", flat=True)) == [
        "pending", "running", "running", "done"
    ]  # fmt: skip
