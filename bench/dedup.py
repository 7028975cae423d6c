"""Dedup benchmark: MinHash + LSH + exact-Jaccard verification against datasketch's defaults.

    .venv/bin/python bench/dedup.py --items 50000 200000 1000000 --baseline 20000

For each size, generates N texts of 30-200 words (seeded, numpy-vectorized; a Zipf-like
vocabulary of 20,000 words) of which about 4% are exact copies (upper case, double spaces) and
10% near copies (1-8% of the words replaced, inserted or deleted) of earlier texts, then runs
our pipeline end to end in this process, on one core, with no database: shingling, signatures,
band keys, candidate pairs, verification, star grouping (what a dedup run's sign and merge
steps do, curation.dedup.services). Prints docs/s by wall clock and by CPU time (the machine
is shared; CPU time is what "on one core" means), CPU time by stage, the memory (peak RSS
during the run minus RSS before it, per text) and precision and recall.

Ground truth: every pair of texts with exact word-3-gram Jaccard >= 0.8, computed from the
generator's word ids (no hashing): all pairs inside each family (a source and every copy of it
or of its copies; every copy's family is its root's), plus any pair we report outside the
families whose exact Jaccard is >= 0.8 (printed; background texts share too few 3-grams).

The baseline is datasketch's MinHashLSH(threshold=0.8, num_perm=128) (its default 9x13 split,
no verification, its own word 3-gram shingling), on the first --baseline texts of the largest
corpus (it runs at a few hundred texts a second). Results go in docs/benchmarks.md ("Dedup").
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.dedup import lsh, minhash

THRESHOLD, NGRAM, CHUNK, VOCABULARY = 0.8, 3, 5_000, 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--baseline", type=int, default=20_000, help="texts for datasketch")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")
    for count in args.items:
        started = time.perf_counter()
        corpus = generate(count, args.seed)
        truth = ground_truth(corpus)
        print(f"\n{count:,} texts, {len(truth):,} true pairs (J >= {THRESHOLD}),"
              f" generated in {time.perf_counter() - started:.1f} s")  # fmt: skip
        found = measure(corpus.texts)
        report("ours (16x8, verified)", found, extend(truth, found, corpus))
    limit = min(args.baseline, count)
    subset = {(a, b) for a, b in truth if b < limit}
    wall, cpu = time.perf_counter(), time.process_time()
    found = baseline(corpus.texts[:limit])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"\ndatasketch defaults (9x13, unverified), first {limit:,} texts of the last corpus:"
          f" {limit / wall:,.0f} docs/s wall, {limit / cpu:,.0f} docs/s CPU")  # fmt: skip
    report("datasketch", found, extend(subset, found, corpus))
    print(f"load average {os.getloadavg()}")


# Our pipeline -------------------------------------------------------------------------------


def measure(texts: list[str]) -> set[tuple[int, int]]:
    gc.collect()
    before = _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    stages: dict[str, float] = defaultdict(float)
    found = ours(texts, stages)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    grown = _peak() - before
    count = len(texts)
    print(f"ours: {count / wall:,.0f} docs/s wall, {count / cpu:,.0f} docs/s CPU"
          f" ({cpu / count * 1e6:.1f} us CPU a text; {wall:.1f} s wall, {cpu:.1f} s CPU);"
          f" memory {grown / count:,.0f} bytes a text ({grown / 2**20:,.0f} MiB)")  # fmt: skip
    print(
        "  CPU by stage: " + ", ".join(f"{k} {v / count * 1e6:.1f} us" for k, v in stages.items())
    )
    return found


def ours(texts: list[str], stages: dict[str, float]) -> set[tuple[int, int]]:
    """Sign in chunks (keeping only the band keys), find candidates, verify, group."""
    clock = time.process_time()
    keys = np.zeros((len(texts), lsh.BANDS), dtype=np.uint64)
    for start in range(0, len(texts), CHUNK):
        shingles = minhash.shingle(texts[start : start + CHUNK], mode="word", size=NGRAM)
        keys[start : start + CHUNK] = lsh.band_keys(minhash.signatures(shingles))
    clock = _stage(stages, "sign", clock)
    candidates = lsh.candidate_pairs(keys)
    del keys
    clock = _stage(stages, "candidates", clock)
    involved = minhash.sorted_unique(candidates)
    shingles = minhash.shingle([texts[i] for i in involved], mode="word", size=NGRAM)
    similarity = minhash.similarities(shingles, np.searchsorted(involved, candidates))
    verified = similarity >= THRESHOLD
    clock = _stage(stages, "verify", clock)
    pairs = candidates[verified].tolist()
    lsh.star_groups(
        ((a, b, s) for (a, b), s in zip(pairs, similarity[verified].tolist(), strict=True)),
        THRESHOLD,
    )
    _stage(stages, "group", clock)
    print(f"  {len(candidates):,} candidate pairs, {len(involved):,} texts in them")
    return {(a, b) for a, b in pairs}


def _stage(stages: dict[str, float], name: str, since: float) -> float:
    now = time.process_time()
    stages[name] += now - since
    return now


def _reset_peak() -> int:
    """Reset the peak RSS (Linux: clear_refs 5) and return the current RSS, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM")


def _status(field: str) -> int:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1]) * 1024
    raise LookupError(field)


def report(name: str, found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> None:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    print(f"  {name}: precision {precision:.4f}, recall {recall:.4f}"
          f" ({len(found):,} pairs reported, {len(truth):,} true)")  # fmt: skip


# The corpus ---------------------------------------------------------------------------------


class Corpus:
    def __init__(self, texts: list[str], words: list[np.ndarray], roots: np.ndarray) -> None:
        self.texts, self.words, self.roots = texts, words, roots


def generate(count: int, seed: int) -> Corpus:
    """Background texts, then near and exact copies of earlier texts (of their roots)."""
    rng = np.random.default_rng(seed)
    vocabulary = _vocabulary(rng)
    kind = rng.random(count)
    kind[:100] = 1.0  # the first texts are originals
    exact, near = kind < 0.04, (kind >= 0.04) & (kind < 0.14)
    roots = np.where(exact | near, (rng.random(count) * np.arange(count)).astype(np.int64), -1)
    roots = np.where(roots < 0, np.arange(count), roots)
    while not (roots[roots] == roots).all():  # a copy of a copy belongs to the first's root
        roots = roots[roots]
    offsets = np.concatenate(([0], np.cumsum(rng.integers(30, 201, count))))
    flat = _zipf(rng, int(offsets[-1]))
    words = [flat[offsets[i] : offsets[i + 1]] for i in range(count)]
    chosen = np.flatnonzero(near)
    edits = rng.random((len(chosen), 3, 16))
    for row, index in enumerate(chosen):
        words[index] = _edit(words[roots[index]], edits[row])
    for index in np.flatnonzero(exact):
        words[index] = words[roots[index]]
    texts = _render(vocabulary, words)
    for index in np.flatnonzero(exact):
        texts[index] = "  ".join(texts[index].upper().split())
    return Corpus(texts, words, roots)


def _vocabulary(rng: np.random.Generator) -> np.ndarray:
    consonants = rng.choice(list("bcdfgklmnprst"), VOCABULARY)
    vowels = rng.choice(list("aeiou"), VOCABULARY)
    words = zip(consonants, vowels, strict=True)
    return np.array([f"{c}{v}{n:x}" for n, (c, v) in enumerate(words)], dtype=object)


def _zipf(rng: np.random.Generator, size: int) -> np.ndarray:
    """Word ranks with probability about (rank + 1) ** -0.8: the continuous inverse CDF."""
    x = rng.random(size) * ((VOCABULARY + 1) ** 0.2 - 1) + 1
    x2 = x * x
    return np.minimum((x2 * x2 * x).astype(np.int64) - 1, VOCABULARY - 1)


def _edit(source: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Replace (40%), insert (30%) or delete (30%) 1-8% of the words."""
    words = source.tolist()
    rate, where, action = 0.01 + 0.07 * draws[0, 0], draws[1], draws[2]
    for edit in range(min(16, max(1, int(len(words) * rate)))):
        at, new = int(where[edit] * len(words)), int(draws[0, edit] * VOCABULARY)
        if action[edit] < 0.4:
            words[at] = new
        elif action[edit] < 0.7:
            words.insert(at, new)
        elif len(words) > 30:
            del words[at]
    return np.array(words, dtype=np.int64)


def _render(vocabulary: np.ndarray, words: list[np.ndarray]) -> list[str]:
    """All texts with one join and one split (C loops), not a join per text."""
    ends = np.cumsum([len(w) for w in words])
    tokens = np.insert(vocabulary[np.concatenate(words)], ends, "\n")
    texts = " ".join(tokens.tolist()).split(" \n")
    texts.pop()
    return [text.lstrip() for text in texts]


def _grams(words: np.ndarray) -> np.ndarray:
    """The distinct word 3-grams of a text, exactly, as integers (no hashing)."""
    v = VOCABULARY
    return minhash.sorted_unique(words[:-2] * (v * v) + words[1:-1] * v + words[2:])


def _similar(corpus: Corpus, a: int, b: int, grams: dict[int, np.ndarray]) -> bool:
    left = grams[a] if a in grams else _grams(corpus.words[a])
    right = grams[b] if b in grams else _grams(corpus.words[b])
    common = len(np.intersect1d(left, right, assume_unique=True))
    return common >= THRESHOLD * (len(left) + len(right) - common)


def ground_truth(corpus: Corpus) -> set[tuple[int, int]]:
    families: dict[int, list[int]] = defaultdict(list)
    for index in np.flatnonzero(corpus.roots != np.arange(len(corpus.roots))).tolist():
        families[int(corpus.roots[index])].append(index)
    truth = set()
    for root, copies in families.items():
        family = [root, *copies]
        grams = {index: _grams(corpus.words[index]) for index in family}
        for position, a in enumerate(family):
            for b in family[position + 1 :]:
                if _similar(corpus, a, b, grams):
                    truth.add((min(a, b), max(a, b)))
    return truth


def extend(truth: set[tuple[int, int]], found: set[tuple[int, int]], corpus: Corpus) -> set:
    """Add the reported pairs outside the families that are truly similar (exact Jaccard)."""
    outside = {(a, b) for a, b in found - truth if corpus.roots[a] != corpus.roots[b]}
    similar = {(a, b) for a, b in outside if _similar(corpus, a, b, {})}
    if outside:
        print(f"  {len(outside):,} reported pairs across families, {len(similar):,} truly similar")
    return truth | similar


# The baseline -------------------------------------------------------------------------------


def baseline(texts: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    index = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    found = set()
    for number, text in enumerate(texts):
        words = text.lower().split()
        signature = MinHash(num_perm=128)
        signature.update_batch(
            " ".join(words[i : i + NGRAM]).encode() for i in range(len(words) - NGRAM + 1)
        )
        for other in index.query(signature):
            found.add((other, number))
        index.insert(number, signature)
    return found


if __name__ == "__main__":
    main()
