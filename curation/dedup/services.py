"""Deduplication runs: plan, sign in batches, merge; and the admins' keep / duplicate actions.

A run moves queued -> signing -> merging -> succeeded. Planning cuts the items without a stored
signature into id ranges (DedupBatch rows); each batch is signed by its own task, on any worker;
the task that completes the last batch queues the merge, which finds candidate pairs among the
stored band keys, verifies them by exact Jaccard, stores the verified pairs and rebuilds the
run's groups from all stored pairs. Every step claims its row with a compare-and-set and writes
its results in one transaction with `ignore_conflicts` inserts, so a step killed half-way
leaves nothing half-written and a step run twice (a redelivery, a takeover) writes nothing
twice. A claim older than LEASE_SECONDS is taken over by `resume`, which the dedup button, the
command and a starting worker call. Results do not depend on the batching: signatures are per
item and deterministic, and the groups depend only on the set of verified pairs.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from curation.dedup import lsh, minhash, semantic
from curation.models import (
    DedupBatch,
    DedupConfig,
    DedupRun,
    DuplicateGroup,
    DuplicateMember,
    DuplicatePair,
    ItemSignature,
)
from labeling.models import Item, Project, Response

logger = logging.getLogger(__name__)

# How long a claimed batch or merge may go without finishing before another worker takes it
# over. Far above a batch's run time (seconds); env-configurable so tests can shorten it.
LEASE_SECONDS = int(os.environ.get("DEDUP_LEASE_SECONDS", "600"))
BATCH_SIZE = 20_000
SIGN_CHUNK = 5_000  # texts tokenized at once: bounds the numpy buffers (docs/curation.md)
WRITE_CHUNK = 2_000

Progress = Callable[[int, int], None]


def config_for(project: Project) -> DedupConfig:
    """The project's parameters (unsaved defaults when it has none)."""
    return DedupConfig.objects.filter(project=project).first() or DedupConfig(project=project)


def fingerprint(config: DedupConfig) -> str:
    return f"{minhash.ALGORITHM}:{config.mode}:{config.ngram}:{config.threshold:g}"


def item_text(messages: list[dict[str, str]]) -> str:
    """The text compared for near duplicates: the whole conversation, turn by turn."""
    return "\n".join(turn["content"] for turn in messages)


# Starting and resuming ----------------------------------------------------------------------


def start_dedup(
    *,
    project: Project,
    trigger: str,
    created_by: Any = None,
    full: bool = False,
    batch_size: int = BATCH_SIZE,
) -> DedupRun:
    """Queue a run, or, when one is live, ask for another after it. Idempotent per live run."""
    from curation.dedup import tasks  # tasks import this module

    live = DedupRun.objects.filter(project=project, status__in=DedupRun.LIVE).first()
    if live is None:
        try:
            with transaction.atomic():
                run = DedupRun.objects.create(
                    project=project, trigger=trigger, created_by=created_by, full=full,
                    batch_size=batch_size, threshold=config_for(project).threshold,
                )  # fmt: skip
        except IntegrityError:  # another request created the live run first
            live = DedupRun.objects.get(project=project, status__in=DedupRun.LIVE)
        else:
            tasks.plan_dedup.delay_on_commit(run.pk)
            return run
    DedupRun.objects.filter(pk=live.pk).update(rerun_requested=True)
    resume(live)
    return live


def resume(run: DedupRun) -> None:
    """Queue again whatever step of a live run nobody holds a fresh claim on."""
    from curation.dedup import tasks

    stale = timezone.now() - timedelta(seconds=LEASE_SECONDS)
    if run.status == DedupRun.Status.QUEUED:
        tasks.plan_dedup.delay_on_commit(run.pk)
    elif run.status == DedupRun.Status.SIGNING:
        batches = run.batch_rows.filter(
            Q(status=DedupBatch.Status.PENDING)
            | Q(status=DedupBatch.Status.RUNNING, claimed_at__lt=stale)
        )
        for batch_id in batches.values_list("pk", flat=True):
            tasks.sign_dedup_batch.delay_on_commit(batch_id)
        if run.batches_done == run.batches:
            tasks.merge_dedup.delay_on_commit(run.pk)
    elif run.status == DedupRun.Status.MERGING and (run.claimed_at or stale) <= stale:
        tasks.merge_dedup.delay_on_commit(run.pk)


def resume_all() -> int:
    """Resume every live run (a worker calls this when it starts). Returns the runs seen."""
    runs = list(DedupRun.objects.filter(status__in=DedupRun.LIVE))
    for run in runs:
        resume(run)
    return len(runs)


# Planning -----------------------------------------------------------------------------------


@transaction.atomic
def plan(*, run_id: int) -> list[int]:
    """Cut the unsigned items into batches; returns their ids. A second call returns []."""
    run = DedupRun.objects.select_for_update().select_related("project").get(pk=run_id)
    if run.status != DedupRun.Status.QUEUED:
        return []
    config = config_for(run.project)
    run.fingerprint, run.threshold = fingerprint(config), config.threshold
    _forget_stale(run)
    ids = list(
        Item.objects.filter(project=run.project, dedup_signature__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    chunks = [ids[start : start + run.batch_size] for start in range(0, len(ids), run.batch_size)]
    batches = DedupBatch.objects.bulk_create(
        DedupBatch(run=run, number=n, first_item=c[0], last_item=c[-1], items=len(c))
        for n, c in enumerate(chunks)
    )
    run.status, run.batches, run.items_to_sign = DedupRun.Status.SIGNING, len(chunks), len(ids)
    run.save(update_fields=["status", "batches", "items_to_sign", "fingerprint", "threshold"])
    return [batch.pk for batch in batches]


def _forget_stale(run: DedupRun) -> None:
    """Drop signatures and pairs made with other parameters (all of them for a full run)."""
    signatures = ItemSignature.objects.filter(project=run.project)
    pairs = DuplicatePair.objects.filter(project=run.project)
    if not run.full:
        signatures = signatures.exclude(fingerprint=run.fingerprint)
        pairs = pairs.exclude(fingerprint=run.fingerprint)
    signatures.delete()
    pairs.delete()


# Signing ------------------------------------------------------------------------------------


def sign_batch(*, batch_id: int) -> bool:
    """Sign one batch's items. True when it completed the run's last batch (merge next)."""
    batch = _claim_batch(batch_id)
    if batch is None:
        return False
    run = batch.run
    config = config_for(run.project)
    items = Item.objects.filter(
        project_id=run.project_id,
        pk__gte=batch.first_item,
        pk__lte=batch.last_item,
        dedup_signature__isnull=True,
    ).order_by("pk")
    rows = list(items.values_list("pk", "messages"))
    responses = _response_hashes(run.project_id, batch.first_item, batch.last_item)
    signatures = [
        signature
        for start in range(0, len(rows), SIGN_CHUNK)
        for signature in _signatures(run, config, rows[start : start + SIGN_CHUNK], responses)
    ]
    with transaction.atomic():
        ItemSignature.objects.bulk_create(signatures, batch_size=WRITE_CHUNK, ignore_conflicts=True)
        done = DedupBatch.objects.filter(pk=batch.pk, status=DedupBatch.Status.RUNNING).update(
            status=DedupBatch.Status.DONE
        )
        if done:  # counted once, whoever else ran this batch
            DedupRun.objects.filter(pk=run.pk).update(
                items_signed=F("items_signed") + batch.items, batches_done=F("batches_done") + 1
            )
    run.refresh_from_db(fields=["batches", "batches_done"])
    return bool(done) and run.batches_done == run.batches


def _claim_batch(batch_id: int) -> DedupBatch | None:
    now = timezone.now()
    stale = now - timedelta(seconds=LEASE_SECONDS)
    claimable = Q(status=DedupBatch.Status.PENDING) | Q(
        status=DedupBatch.Status.RUNNING, claimed_at__lt=stale
    )
    claimed = DedupBatch.objects.filter(
        claimable, pk=batch_id, run__status=DedupRun.Status.SIGNING
    ).update(status=DedupBatch.Status.RUNNING, claimed_at=now)
    if not claimed:
        logger.info("dedup.batch_not_claimable", extra={"batch_id": batch_id})
        return None
    return DedupBatch.objects.select_related("run", "run__project").get(pk=batch_id)


def _signatures(
    run: DedupRun, config: DedupConfig, rows: list[tuple[int, Any]], responses: dict[int, list]
) -> list[ItemSignature]:
    texts = [item_text(messages) for _, messages in rows]
    shingles = minhash.shingle(texts, mode=config.mode, size=config.ngram)
    values = minhash.signatures(shingles)
    keys = lsh.band_keys(values, lsh.rows_for(run.threshold))
    return [
        ItemSignature(
            item_id=pk,
            project_id=run.project_id,
            run_id=run.pk,
            fingerprint=run.fingerprint,
            signature=values[index].astype("<u4").tobytes(),
            band_keys=keys[index].astype("<u8").tobytes(),
            prompt_hash=minhash.text_hash(texts[index]),
            response_hashes=responses.get(pk, []),
        )
        for index, (pk, _) in enumerate(rows)
    ]


def _response_hashes(project_id: int, first: int, last: int) -> dict[int, list[int]]:
    hashes: dict[int, list[int]] = defaultdict(list)
    rows = Response.objects.filter(
        item__project_id=project_id, item_id__gte=first, item_id__lte=last
    ).order_by("item_id", "position")
    for item_id, text in rows.values_list("item_id", "text").iterator(chunk_size=WRITE_CHUNK):
        hashes[item_id].append(minhash.text_hash(text))
    return hashes


# Merging ------------------------------------------------------------------------------------


def merge(*, run_id: int) -> DedupRun | None:
    """Find, verify and store the new pairs, then write the run's groups. Idempotent."""
    run = _claim_merge(run_id)
    if run is None:
        return None
    ids, keys, fresh = _stored_keys(run)
    candidates = lsh.candidate_pairs(keys, None if run.full else fresh)
    pairs = [(first, second) for first, second in ids[candidates].tolist()]
    verified = _verify(run, _unstored(run, pairs))
    DuplicatePair.objects.bulk_create(verified, batch_size=WRITE_CHUNK, ignore_conflicts=True)
    similar = semantic.find_groups(run)  # embeddings take minutes: computed before the lock
    with transaction.atomic():
        locked = DedupRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != DedupRun.Status.MERGING:
            return None  # another worker took over and finished first
        _write_groups(run)
        _create_groups(run, DuplicateGroup.Kind.SEMANTIC, similar.groups)
        locked.status, locked.finished_at = DedupRun.Status.SUCCEEDED, timezone.now()
        locked.candidate_pairs, locked.verified_pairs = len(pairs), len(verified)
        locked.message = _summary(run) + similar.message
        locked.save()
    logger.info("dedup.finished", extra={"run_id": run.pk, "pairs": len(verified)})
    return locked


def _claim_merge(run_id: int) -> DedupRun | None:
    now = timezone.now()
    stale = now - timedelta(seconds=LEASE_SECONDS)
    ready = Q(status=DedupRun.Status.SIGNING, batches_done=F("batches"))
    abandoned = Q(status=DedupRun.Status.MERGING, claimed_at__lt=stale)
    claimed = DedupRun.objects.filter(ready | abandoned, pk=run_id).update(
        status=DedupRun.Status.MERGING, claimed_at=now
    )
    if not claimed:
        logger.info("dedup.merge_not_claimable", extra={"run_id": run_id})
        return None
    return DedupRun.objects.select_related("project").get(pk=run_id)


def _stored_keys(run: DedupRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item ids, band keys (n x BANDS) and which were signed by this run, in id order."""
    rows = (
        ItemSignature.objects.filter(project_id=run.project_id, fingerprint=run.fingerprint)
        .order_by("item_id")
        .values_list("item_id", "band_keys", "run_id")
    )
    ids, keys, fresh = [], [], []
    for item_id, band_keys, signed_by in rows.iterator(chunk_size=WRITE_CHUNK * 5):
        ids.append(item_id)
        keys.append(bytes(band_keys))
        fresh.append(signed_by == run.pk)
    bands = minhash.NUM_PERM // lsh.rows_for(run.threshold)
    matrix = np.frombuffer(b"".join(keys), dtype="<u8").reshape(len(ids), bands)
    return np.array(ids, dtype=np.int64), matrix, np.array(fresh, dtype=bool)


def _unstored(run: DedupRun, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Leave out pairs verified by an earlier run (a takeover, or a rerun of this merge)."""
    stored = set(
        DuplicatePair.objects.filter(
            project_id=run.project_id, fingerprint=run.fingerprint
        ).values_list("first_id", "second_id")
    )
    return [pair for pair in pairs if pair not in stored]


def _verify(run: DedupRun, pairs: list[tuple[int, int]]) -> list[DuplicatePair]:
    """Exact Jaccard of each candidate pair's shingle sets; keep those at the threshold."""
    if not pairs:
        return []
    config = config_for(run.project)
    ids = np.array(pairs, dtype=np.int64)
    involved = minhash.sorted_unique(ids)
    texts: list[str] = []
    for start in range(0, len(involved), SIGN_CHUNK):
        chunk = involved[start : start + SIGN_CHUNK].tolist()
        loaded = dict(Item.objects.filter(pk__in=chunk).values_list("pk", "messages"))
        texts.extend(item_text(loaded[pk]) for pk in chunk)
    shingles = minhash.shingle(texts, mode=config.mode, size=config.ngram)
    similarity = minhash.similarities(shingles, np.searchsorted(involved, ids))
    keep = np.flatnonzero(similarity >= run.threshold)
    return [
        DuplicatePair(
            project_id=run.project_id,
            first_id=first,
            second_id=second,
            similarity=value,
            fingerprint=run.fingerprint,
        )
        for (first, second), value in zip(
            ids[keep].tolist(), similarity[keep].tolist(), strict=True
        )
    ]


def _write_groups(run: DedupRun) -> None:
    """Replace the run's groups: near (from every stored pair), exact prompts, exact responses."""
    run.groups.all().delete()
    pairs = DuplicatePair.objects.filter(project_id=run.project_id, fingerprint=run.fingerprint)
    near = lsh.star_groups(pairs.values_list("first_id", "second_id", "similarity"), run.threshold)
    _create_groups(run, DuplicateGroup.Kind.NEAR, near)
    signatures = ItemSignature.objects.filter(project_id=run.project_id)
    _create_groups(run, DuplicateGroup.Kind.EXACT_PROMPT, _exact_prompts(signatures))
    _create_groups(run, DuplicateGroup.Kind.EXACT_RESPONSE, _exact_responses(signatures))


def _exact_prompts(signatures: Any) -> list[lsh.Group]:
    repeated = (
        signatures.values("prompt_hash")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values("prompt_hash")
    )
    rows = signatures.filter(prompt_hash__in=repeated).values_list("prompt_hash", "item_id")
    return _groups_by_key(rows)


def _exact_responses(signatures: Any) -> list[lsh.Group]:
    rows = signatures.exclude(response_hashes=[]).values_list("item_id", "response_hashes")
    pairs = ((value, item_id) for item_id, values in rows.iterator() for value in set(values))
    return _groups_by_key(pairs)


def _groups_by_key(rows: Iterable[tuple[int, int]]) -> list[lsh.Group]:
    members: dict[int, set[int]] = defaultdict(set)
    for key, item_id in rows:
        members[key].add(item_id)
    groups = [sorted(ids) for ids in members.values() if len(ids) > 1]
    return [lsh.Group(ids[0], [(pk, 1.0) for pk in ids]) for ids in sorted(groups)]


def _create_groups(run: DedupRun, kind: str, groups: list[lsh.Group]) -> None:
    rows = DuplicateGroup.objects.bulk_create(
        (
            DuplicateGroup(
                run=run,
                kind=kind,
                number=number,
                representative_id=group.representative,
                size=len(group.members),
                min_similarity=min(s for _, s in group.members),
            )
            for number, group in enumerate(groups, start=1)
        ),
        batch_size=WRITE_CHUNK,
    )
    DuplicateMember.objects.bulk_create(
        (
            DuplicateMember(group=row, item_id=item_id, similarity=similarity)
            for row, group in zip(rows, groups, strict=True)
            for item_id, similarity in group.members
        ),
        batch_size=WRITE_CHUNK,
    )


def _summary(run: DedupRun) -> str:
    counts = dict(run.groups.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n"))
    return (
        f"{counts.get('near', 0)} near-duplicate groups, {counts.get('exact_prompt', 0)} groups"
        f" of exact duplicate prompts, {counts.get('exact_response', 0)} of exact duplicate"
        " responses."
    )


# Running in-process (the command) -----------------------------------------------------------


def run_in_process(run: DedupRun, progress: Progress | None = None) -> DedupRun:
    """Plan, sign and merge `run` in this process, as the workers would, step by step."""
    batch_ids = plan(run_id=run.pk)
    for batch_id in batch_ids:
        sign_batch(batch_id=batch_id)
        if progress:
            run.refresh_from_db(fields=["items_signed", "items_to_sign"])
            progress(run.items_signed, run.items_to_sign)
    merge(run_id=run.pk)
    run.refresh_from_db()
    return run


# Decisions ----------------------------------------------------------------------------------


def mark_duplicate(*, project: Project, item_ids: Iterable[int]) -> int:
    """Take items out of the queue and the exports. Idempotent; returns the items changed.

    Only the status changes: the claim query skips non-active items and open_slots keeps the
    count of judgements still wanted, so an item kept again later resumes where it was.
    """
    return Item.objects.filter(
        project=project, pk__in=list(item_ids), status=Item.Status.ACTIVE
    ).update(status=Item.Status.DUPLICATE)


def keep(*, project: Project, item_ids: Iterable[int]) -> int:
    """Put items marked duplicate back into the queue. Idempotent; returns the items changed."""
    return Item.objects.filter(
        project=project, pk__in=list(item_ids), status=Item.Status.DUPLICATE
    ).update(status=Item.Status.ACTIVE)


ACTIONABLE = (DuplicateGroup.Kind.NEAR, DuplicateGroup.Kind.EXACT_PROMPT)


@transaction.atomic
def keep_oldest(*, run: DedupRun, groups: Iterable[DuplicateGroup] | None = None) -> int:
    """In each prompt group (all of the run's by default), keep the oldest item and mark the
    others duplicate. Response groups are a report only: two prompts may share an answer."""
    chosen = run.groups.filter(kind__in=ACTIONABLE) if groups is None else groups
    members = DuplicateMember.objects.filter(group__in=chosen).order_by("group_id", "item_id")
    by_group: dict[int, list[int]] = defaultdict(list)
    for group_id, item_id in members.values_list("group_id", "item_id"):
        by_group[group_id].append(item_id)  # item ids ascend: the oldest comes first
    marked = [pk for ids in by_group.values() for pk in ids[1:]]
    return sum(
        mark_duplicate(project=run.project, item_ids=marked[start : start + WRITE_CHUNK])
        for start in range(0, len(marked), WRITE_CHUNK)
    )
