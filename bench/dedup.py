"""Dedup benchmark: MinHash + LSH + exact-Jaccard verification against datasketch's defaults.

    .venv/bin/python bench/dedup.py --items 200000        # options: --baseline N, --seed N

Generates N texts of 30-200 words (seeded; a Zipf-like vocabulary of 20,000 words) of which
about 4% are exact copies (case and spacing changed) and 10% near copies (1-8% of the words
replaced, inserted or deleted) of earlier texts. The ground truth is the set of pairs inside
each family (a source and its copies) whose exact word-3-gram Jaccard is at least 0.8; the
background texts share no 3-grams with one another at this vocabulary (checked on a sample
with --check). Prints docs/s end to end (shingling, signatures, band keys, candidate pairs,
verification, grouping), the peak RSS and its growth per document, precision and recall of
the pairs, then the same for datasketch's MinHashLSH(threshold=0.8, num_perm=128), with
datasketch's own word 3-gram shingling, on the first --baseline texts. Pure Python and numpy:
no database. Results go in docs/benchmarks.md ("## Dedup").
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curation.dedup import lsh, minhash

THRESHOLD, NGRAM, CHUNK = 0.8, 3, 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--baseline", type=int, default=None, help="texts for datasketch")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    texts, families = generate(args.items, args.seed)
    truth = ground_truth(texts, families)
    base_rss = rss_mib()
    print(
        f"{len(texts):,} texts, {len(truth):,} true pairs (J >= {THRESHOLD});"
        f" RSS {base_rss:.0f} MiB"
    )
    started = time.perf_counter()
    found = ours(texts)
    elapsed = time.perf_counter() - started
    grow = (rss_mib() - base_rss) * 2**20 / len(texts)
    line("ours (rensa + numpy, 16x8, verified)", len(texts), elapsed, found, truth)
    print(f"  peak RSS {rss_mib():.0f} MiB, growth {grow:,.0f} bytes/doc")
    limit = args.baseline or len(texts)
    subset_truth = {(a, b) for a, b in truth if b < limit}
    started = time.perf_counter()
    found = baseline(texts[:limit])
    line("datasketch defaults (9x13, unverified)", limit, time.perf_counter() - started, found,
         subset_truth)  # fmt: skip
    print(f"  peak RSS {rss_mib():.0f} MiB (process)")


def line(name: str, count: int, seconds: float, found: set, truth: set) -> None:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    print(f"{name}: {count:,} docs in {seconds:.1f} s = {count / seconds:,.0f} docs/s;"
          f" precision {precision:.4f}, recall {recall:.4f} ({len(found):,} pairs)")  # fmt: skip


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(count: int, seed: int) -> tuple[list[str], list[list[int]]]:
    rng = random.Random(seed)
    vocabulary = [f"{rng.choice('bcdfgklmnprst')}{rng.choice('aeiou')}{n:x}" for n in range(20_000)]
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(vocabulary))]
    texts: list[str] = []
    families: dict[int, list[int]] = defaultdict(list)
    for index in range(count):
        kind = rng.random()
        if index > 100 and kind < 0.04:
            source = rng.randrange(index)
            source = families_root(families, source)
            texts.append("  ".join(texts[source].upper().split()))
            families[source].append(index)
            _ROOT[index] = source
        elif index > 100 and kind < 0.14:
            source = families_root(families, rng.randrange(index))
            texts.append(edit(rng, texts[source], vocabulary))
            families[source].append(index)
            _ROOT[index] = source
        else:
            texts.append(" ".join(rng.choices(vocabulary, weights, k=rng.randint(30, 200))))
    return texts, [[root, *members] for root, members in families.items()]


# A copy's family is its source's: copies of copies share one family (and the ground truth).


_ROOT: dict[int, int] = {}


def families_root(families: dict[int, list[int]], index: int) -> int:
    return _ROOT.get(index, index)


def edit(rng: random.Random, text: str, vocabulary: list[str]) -> str:
    words = text.split()
    for _ in range(max(1, int(len(words) * rng.uniform(0.01, 0.08)))):
        at = rng.randrange(len(words))
        action = rng.random()
        if action < 0.4:
            words[at] = rng.choice(vocabulary)
        elif action < 0.7:
            words.insert(at, rng.choice(vocabulary))
        elif len(words) > 30:
            del words[at]
    return " ".join(words)


def ground_truth(texts: list[str], families: list[list[int]]) -> set[tuple[int, int]]:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}

    truth = set()
    for family in families:
        sets = {index: grams(texts[index]) for index in family}
        for position, a in enumerate(family):
            for b in family[position + 1 :]:
                union = len(sets[a] | sets[b])
                if union and len(sets[a] & sets[b]) / union >= THRESHOLD:
                    truth.add((min(a, b), max(a, b)))
    return truth


def ours(texts: list[str]) -> set[tuple[int, int]]:
    keys = []
    for start in range(0, len(texts), CHUNK):
        shingles = minhash.shingle(texts[start : start + CHUNK], mode="word", size=NGRAM)
        keys.append(lsh.band_keys(minhash.signatures(shingles)))
    candidates = lsh.candidate_pairs(np.concatenate(keys))
    involved = sorted({int(i) for pair in candidates for i in pair})
    sets = {}
    for start in range(0, len(involved), CHUNK):
        chunk = involved[start : start + CHUNK]
        shingles = minhash.shingle([texts[i] for i in chunk], mode="word", size=NGRAM)
        sets.update((i, np.unique(shingles.of(n))) for n, i in enumerate(chunk))
    verified = [
        (int(a), int(b), minhash.jaccard(sets[int(a)], sets[int(b)])) for a, b in candidates
    ]
    lsh.star_groups(verified, THRESHOLD)
    return {(a, b) for a, b, similarity in verified if similarity >= THRESHOLD}


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
